//! Network egress and host sockets.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::harness::Fixture;

/// A host TCP listener that records whether anything connected.
fn tcp_listener() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hit = Arc::new(AtomicBool::new(false));
    let flag = hit.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        for _ in 0..200 {
            if let Ok((mut s, _)) = listener.accept() {
                flag.store(true, Ordering::SeqCst);
                let mut b = [0u8; 16];
                let _ = s.read(&mut b);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    });
    (port, hit)
}

#[test]
fn tcp_egress_to_host_and_internet() {
    let fx = Fixture::new();
    let (port, hit) = tcp_listener();
    let out = fx.run(&format!(
        "probe tcp 127.0.0.1 {port}; probe tcp 1.1.1.1 443; probe tcp 10.0.0.1 22; ip -o link 2>/dev/null | wc -l; cat /proc/net/dev | grep -c :"
    ));
    out.ok().never("OK\n");
    assert!(!hit.load(Ordering::SeqCst), "host listener reached:\n{out}");
    // Only loopback exists.
    out.expect(&["1\n"]);
}

#[test]
fn bash_dev_tcp() {
    let fx = Fixture::new();
    let (port, hit) = tcp_listener();
    let out = fx.run(&format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED; exec 4<>/dev/tcp/1.1.1.1/80 && echo CONNECTED-OUT; echo done"
    ));
    out.ok().never("CONNECTED").expect(&["done"]);
    assert!(!hit.load(Ordering::SeqCst));
}

#[test]
fn loopback_inside_still_works() {
    let fx = Fixture::new();
    // A local test server: legitimate for test runners.
    fx.run("probe udp 127.0.0.1 9; (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 | grep -o refused")
        .ok()
        .expect(&["OK", "refused"]);
}

#[test]
fn udp_egress() {
    let fx = Fixture::new();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_nonblocking(true).unwrap();
    let out = fx.run(&format!(
        "probe udp 8.8.8.8 53; probe udp 10.1.2.3 {port}; echo x > /dev/udp/127.0.0.1/{port}; true"
    ));
    out.ok().expect(&["DENIED ENETUNREACH\nDENIED ENETUNREACH"]);
    let mut buf = [0u8; 16];
    assert!(sock.recv_from(&mut buf).is_err(), "host UDP socket reached");
}

#[test]
fn icmp_egress() {
    let fx = Fixture::new();
    fx.run("probe icmp 1.1.1.1; probe raw 1.1.1.1; true")
        .ok()
        .never("OK");
}

#[test]
fn dns_lookup() {
    let fx = Fixture::new();
    fx.run("getent hosts example.com && echo RESOLVED; getent hosts localhost")
        .ok()
        .never("RESOLVED")
        .expect(&["localhost"]);
}

#[test]
fn host_pathname_unix_socket() {
    let fx = Fixture::new();
    let path = fx.path("outside/host.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    fx.run(&format!(
        "probe unix_connect {}; probe unix_connect /run/dbus/system_bus_socket; probe unix_connect /var/run/docker.sock; probe unix_self /tmp/own.sock",
        path.display()
    ))
    .ok()
    .expect(&["DENIED ENOENT\nDENIED ENOENT\nDENIED ENOENT\nOK"]);
}

#[test]
fn host_abstract_unix_socket() {
    let fx = Fixture::new();
    let name = format!("codencer-hostile-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = UnixListener::bind_addr(&addr).unwrap();
    fx.run(&format!(
        "probe abstract_connect {name}; probe abstract_self inner-{name}"
    ))
    .ok()
    .expect(&["DENIED ECONNREFUSED\nOK"]);
}

#[test]
fn proxy_bridge_only_way_out() {
    use std::io::{BufRead, BufReader, Write};
    let fx = Fixture::new();
    let path = fx.path("outside/proxy.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = (&stream).write_all(format!("proxy saw {line}").as_bytes());
        }
    });
    let mut spec = fx.spec(
        "exec 3<>/dev/tcp/127.0.0.1/3128 && echo hello >&3 && read -r line <&3 && echo \"$line\"; probe tcp 127.0.0.1 3129; probe tcp 1.1.1.1 80",
    );
    spec.sandbox.network = codencer_sandbox::NetworkSpec::Proxy {
        unix_socket: path,
        port: 3128,
    };
    let out = crate::harness::run(&spec, None);
    out.expect(&["proxy saw hello", "DENIED EACCES\nDENIED EACCES"]);
    assert_eq!(
        out.report
            .layer(codencer_sandbox::Layer::Network)
            .unwrap()
            .status,
        codencer_sandbox::Enforcement::Enforced
    );
}

/// A unix socket standing in for the supervisor's forward relay.
fn relay_socket(fx: &Fixture, name: &str) -> std::path::PathBuf {
    use std::io::{BufRead, BufReader, Write};
    let path = fx.path(&format!("outside/{name}"));
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = (&stream).write_all(format!("forward saw {line}").as_bytes());
        }
    });
    path
}

#[test]
fn forward_reaches_exactly_the_listed_port() {
    for proxy in [false, true] {
        let fx = Fixture::new();
        let (other, hit) = tcp_listener();
        let forward = relay_socket(&fx, "f.sock");
        let mut spec = fx.spec(&format!(
            "exec 3<>/dev/tcp/127.0.0.1/18080 && echo hi >&3 && read -r line <&3 && echo \"$line\"; probe tcp 127.0.0.1 {other}; probe tcp 127.0.0.1 18081; probe tcp 1.1.1.1 18080; true"
        ));
        spec.sandbox.forwards = vec![codencer_sandbox::ForwardSpec {
            addr: "127.0.0.1:18080".parse().unwrap(),
            unix_socket: forward,
        }];
        if proxy {
            spec.sandbox.network = codencer_sandbox::NetworkSpec::Proxy {
                unix_socket: relay_socket(&fx, "p.sock"),
                port: 3128,
            };
        }
        let out = crate::harness::run(&spec, None);
        out.ok().expect(&["forward saw hi"]).never("\nOK");
        assert!(
            !hit.load(Ordering::SeqCst),
            "unforwarded host port reached:\n{out}"
        );
        let network = out.report.layer(codencer_sandbox::Layer::Network).unwrap();
        assert!(
            network.detail.contains("forwarded: 127.0.0.1:18080"),
            "{out}"
        );
    }
}

#[test]
fn forward_to_a_non_loopback_address_is_refused() {
    let fx = Fixture::new();
    let mut spec = fx.spec("touch RAN");
    spec.sandbox.forwards = vec![codencer_sandbox::ForwardSpec {
        addr: "10.0.0.1:80".parse().unwrap(),
        unix_socket: fx.path("outside/f.sock"),
    }];
    let out = crate::harness::run(&spec, None);
    let err = out.report.setup_error.clone().unwrap_or_default();
    assert!(err.contains("not a loopback address"), "{out}");
    assert!(!fx.path("wt/RAN").exists());
}
