//! `orchestratorctl gates`: list gates and decide pending ones. A decision is an appended
//! `gate.decided` event whose actor is the local user; `codencer resume` acts on it.

use codencer_store::{EventBody, GateStatus, NewEvent, Store};

use super::common::*;
use super::ctl_error::{CtlError, store_error};
use crate::text::serde_name;

#[derive(Debug)]
pub enum GatesAction {
    List {
        run: Option<String>,
        status: Option<String>,
        json: bool,
    },
    Decide {
        id: String,
        approve: bool,
        reason: Option<String>,
    },
}

pub fn run(store: &Store, action: GatesAction) -> Result<u8, CtlError> {
    match action {
        GatesAction::List { run, status, json } => list(store, run, status, json),
        GatesAction::Decide {
            id,
            approve,
            reason,
        } => decide(store, &id, approve, reason),
    }
}

fn list(
    store: &Store,
    run: Option<String>,
    status: Option<String>,
    json: bool,
) -> Result<u8, CtlError> {
    let run_id = run
        .map(|r| store.resolve_run_id(&r).map_err(store_error))
        .transpose()?;
    let status = status
        .map(|s| s.parse::<GateStatus>().map_err(|e| e.to_string()))
        .transpose()?;
    let gates = store
        .gates(run_id.as_deref(), status)
        .map_err(store_error)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&gates).map_err(|e| e.to_string())?
        );
    } else if gates.is_empty() {
        println!("no gates");
    } else {
        println!(
            "{:<26}  {:<10}  {:<9}  {:<26}  reason",
            "ID", "NAME", "STATUS", "RUN"
        );
        for g in gates {
            println!(
                "{:<26}  {:<10}  {:<9}  {:<26}  {}",
                g.id,
                g.name,
                serde_name(&g.status),
                g.run_id,
                g.reason.unwrap_or_default()
            );
        }
    }
    Ok(EXIT_PASSED)
}

fn decide(store: &Store, id: &str, approve: bool, reason: Option<String>) -> Result<u8, CtlError> {
    let gate = store.gate(id).map_err(store_error)?.ok_or_else(|| {
        format!("no gate `{id}` (list them with `orchestratorctl gates list --status pending`)")
    })?;
    if gate.status != GateStatus::Pending {
        return Err(CtlError::Invalid(format!(
            "gate {id} is already {} (by {})",
            serde_name(&gate.status),
            gate.decided_by.unwrap_or_else(|| "codencer".into())
        )));
    }
    let status = if approve {
        GateStatus::Approved
    } else {
        GateStatus::Rejected
    };
    store
        .append(NewEvent {
            run_id: Some(gate.run_id.clone()),
            step_id: gate.step_id.clone(),
            attempt_id: gate.attempt_id.clone(),
            actor: local_actor(),
            body: EventBody::GateDecided {
                gate_id: gate.id.clone(),
                name: gate.name.clone(),
                status,
                reason,
            },
        })
        .map_err(store_error)?;
    println!(
        "gate {} {}; continue the run with `codencer resume {}`",
        gate.id,
        serde_name(&status),
        gate.run_id
    );
    Ok(EXIT_PASSED)
}
