//! One approved statement per incident (统一口径, D-ESC-2): versions go draft → approved (by a
//! role) → superseded. Exactly one version is in force at a time, every channel is given
//! that one, and using any other is refused.

use redress_platform::time::to_timestamp;
use redress_proto::redress::escalation::v1::{Statement, StatementState};

use super::{Actor, Change, DomainError};

/// The resource name of a version of an incident's statement.
pub fn name(incident: &str, version: i32) -> String {
    format!("{incident}/statements/{version}")
}

/// The incident and version a statement's name names.
pub fn parse_name(name: &str) -> Option<(&str, i32)> {
    let (incident, version) = name.rsplit_once("/statements/")?;
    let version: i32 = version.parse().ok().filter(|v| *v > 0)?;
    let id = incident.strip_prefix("incidents/")?;
    uuid::Uuid::try_parse(id).ok()?;
    Some((incident, version))
}

fn state_of(statement: &Statement) -> StatementState {
    StatementState::try_from(statement.state).unwrap_or(StatementState::Unspecified)
}

/// A new draft, the version after the newest of `existing`.
pub fn draft(incident: &str, existing: &[Statement], text: String, actor: &Actor) -> (Statement, Change) {
    let version = existing.iter().map(|s| s.version).max().unwrap_or(0) + 1;
    let statement = Statement {
        name: name(incident, version),
        incident: incident.to_owned(),
        version,
        state: StatementState::Draft as i32,
        text,
        drafted_by: actor.subject.clone(),
        draft_time: Some(to_timestamp(actor.now)),
        ..Statement::default()
    };
    (statement, Change::new("statement.drafted", [("version", version.to_string())]))
}

/// The version in force, if one was approved.
pub fn current(statements: &[Statement]) -> Option<&Statement> {
    statements.iter().find(|s| state_of(s) == StatementState::Approved)
}

/// Approves the draft `version` by an actor holding one of `approver_roles`; the version in
/// force until now is superseded. Returns the versions changed (the approved one first).
pub fn approve(
    statements: &mut [Statement],
    version: i32,
    approver_roles: &[String],
    actor: &Actor,
) -> Result<(Vec<Statement>, Change), DomainError> {
    let Some(role) = actor.roles.iter().find(|r| approver_roles.contains(r)).cloned() else {
        return Err(DomainError::ApproverRoleRequired { roles: approver_roles.to_vec() });
    };
    let target = statements.iter().position(|s| s.version == version);
    let Some(target) = target else {
        return Err(DomainError::StatementNotDraft { name: format!("version {version}") });
    };
    if state_of(&statements[target]) != StatementState::Draft {
        return Err(DomainError::StatementNotDraft { name: statements[target].name.clone() });
    }
    let now = Some(to_timestamp(actor.now));
    let approved_name = statements[target].name.clone();
    let mut changed = Vec::new();
    let mut superseded = String::new();
    for s in statements.iter_mut().filter(|s| state_of(s) == StatementState::Approved) {
        s.state = StatementState::Superseded as i32;
        s.superseded_by = approved_name.clone();
        s.supersede_time = now;
        superseded = s.name.clone();
        changed.push(s.clone());
    }
    let s = &mut statements[target];
    s.state = StatementState::Approved as i32;
    s.approved_by = actor.subject.clone();
    s.approver_role = role.clone();
    s.approve_time = now;
    changed.insert(0, s.clone());
    Ok((
        changed,
        Change::new(
            "statement.approved",
            [("version", version.to_string()), ("role", role), ("superseded", superseded)],
        ),
    ))
}

/// Whether `statement` may be used now: only the one in force.
pub fn check_use(statement: &Statement) -> Result<(), DomainError> {
    match state_of(statement) {
        StatementState::Approved => Ok(()),
        StatementState::Superseded => Err(DomainError::StatementSuperseded {
            name: statement.name.clone(),
            current: statement.superseded_by.clone(),
        }),
        StatementState::Draft | StatementState::Unspecified => {
            Err(DomainError::StatementNotApproved { name: statement.name.clone() })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INCIDENT: &str = "incidents/0196a8f0-0000-7000-8000-000000000001";

    fn actor(roles: &[&str]) -> Actor {
        Actor {
            subject: "user:pr".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            now: chrono::Utc::now(),
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&name(INCIDENT, 3)), Some((INCIDENT, 3)));
        for bad in ["incidents/x/statements/1", "incidents/1/statements/0", "cases/1/statements/1"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_version_is_in_force_and_the_one_before_is_superseded_and_refused() {
        let roles = vec!["senior_manager".to_owned()];
        let mut all = Vec::new();
        let (v1, _) = draft(INCIDENT, &all, "第一版".into(), &actor(&[]));
        all.push(v1);
        assert_eq!(check_use(&all[0]), Err(DomainError::StatementNotApproved { name: all[0].name.clone() }));
        assert!(matches!(
            approve(&mut all, 1, &roles, &actor(&["handler"])),
            Err(DomainError::ApproverRoleRequired { .. })
        ));
        approve(&mut all, 1, &roles, &actor(&["senior_manager"])).unwrap();
        assert_eq!(current(&all).unwrap().version, 1);
        let (v2, _) = draft(INCIDENT, &all, "第二版".into(), &actor(&[]));
        assert_eq!(v2.version, 2);
        all.push(v2);
        assert_eq!(current(&all).unwrap().version, 1, "a draft does not replace the version in force");
        let (changed, change) = approve(&mut all, 2, &roles, &actor(&["senior_manager"])).unwrap();
        assert_eq!(changed.len(), 2);
        assert_eq!(change.details["superseded"], name(INCIDENT, 1));
        assert_eq!(current(&all).unwrap().text, "第二版");
        assert_eq!(
            check_use(&all[0]),
            Err(DomainError::StatementSuperseded { name: name(INCIDENT, 1), current: name(INCIDENT, 2) })
        );
        assert!(check_use(&all[1]).is_ok());
        assert!(matches!(
            approve(&mut all, 2, &roles, &actor(&["senior_manager"])),
            Err(DomainError::StatementNotDraft { .. })
        ));
    }
}
