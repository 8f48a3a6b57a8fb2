//! Network bridges: a loopback address inside the sandbox's network namespace
//! (`127.0.0.1:<port>` for the proxy, each forward's own address), relayed to the
//! supervisor's unix socket outside. Each connection is relayed by a forked child of the
//! worker (outside the sandbox), which dies with the worker.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, fork};

/// The listening side of the bridge (in the worker's new network namespace).
#[derive(Debug)]
pub struct Bridge {
    pub listener: TcpListener,
    target: PathBuf,
}

impl Bridge {
    /// Listens on `addr` (loopback) of the current network namespace.
    pub fn listen(target: &Path, addr: SocketAddr) -> io::Result<Bridge> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Bridge {
            listener,
            target: target.to_owned(),
        })
    }

    /// Accepts one pending connection and forks its relay.
    pub fn accept(&self) {
        let Ok((inside, _)) = self.listener.accept() else {
            return;
        };
        // SAFETY: the worker is single-threaded; the child only relays and exits.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = prctl::set_pdeathsig(Signal::SIGKILL);
                // The report socket is the worker's alone.
                let _ = nix::unistd::close(codencer_sandbox::REPORT_FD);
                let code = match relay(inside, &self.target) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                std::process::exit(code)
            }
            Ok(ForkResult::Parent { .. }) | Err(_) => {}
        }
    }
}

fn relay(inside: TcpStream, target: &Path) -> io::Result<()> {
    inside.set_nonblocking(false)?;
    let outside = UnixStream::connect(target)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = [true, true];
    let interest = |open: bool| {
        if open {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        }
    };
    while open[0] || open[1] {
        let mut fds = [
            PollFd::new(inside.as_fd(), interest(open[0])),
            PollFd::new(outside.as_fd(), interest(open[1])),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = fds.map(|f| f.revents().is_some_and(|r| !r.is_empty()));
        if ready[0] && open[0] {
            let shut = || drop(outside.shutdown(Shutdown::Write));
            open[0] = copy(&inside, &outside, shut, &mut buf)?;
        }
        if ready[1] && open[1] {
            let shut = || drop(inside.shutdown(Shutdown::Write));
            open[1] = copy(&outside, &inside, shut, &mut buf)?;
        }
    }
    Ok(())
}

/// Copies what is readable on `from` to `to`; on EOF half-closes `to` (via `shut`) and
/// returns false.
fn copy(
    mut from: impl io::Read,
    mut to: impl io::Write,
    shut: impl FnOnce(),
    buf: &mut [u8],
) -> io::Result<bool> {
    let n = match from.read(buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
        Err(e) => return Err(e),
    };
    if n == 0 {
        shut();
        return Ok(false);
    }
    to.write_all(&buf[..n])?;
    Ok(true)
}
