//! The verified caller. The gateway authenticates a caller and forwards a short-lived principal
//! token (an EdDSA JWT signed with the gateway's own key, addressed to one service) in the
//! `x-redress-principal` metadata entry; every service verifies it before it serves a call.
//! Services calling each other sign their own service principal with their own keys, and act
//! on behalf of their caller only with the caller's own gateway-signed token
//! ([`crate::signing`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tonic::Request;

use crate::ServiceError;
pub use crate::signing::{CallerToken, ServiceAuth, ServiceCredentials};

/// Metadata key carrying the signed principal between the gateway and services.
pub const PRINCIPAL_METADATA_KEY: &str = "x-redress-principal";
/// Metadata key carrying, on a call a service makes on behalf of its own caller, that caller's
/// token as the gateway signed it for the calling service ([`crate::signing`]).
pub const ON_BEHALF_METADATA_KEY: &str = "x-redress-on-behalf-of";

/// A permission a principal may hold. Strings are stable and appear in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ComplaintsCreate,
    ComplaintsRead,
    /// Override a complaint's automatic classification and grade.
    ComplaintsClassify,
    CasesRead,
    /// Change cases: assign, transfer, transition, propose, decide, ...
    CasesWrite,
    /// Approve resolutions whose compensation exceeds the proposer's authority limit.
    CasesApprove,
    /// Extend the regulatory decision clock to 30 days (complex cases, D-SLA-2).
    CasesExtend,
    /// Extend it to 60 days (higher-level branch or head-office senior manager, D-SLA-2).
    CasesExtendSpecial,
    EventsRead,
    /// List and replay the events a consumer passed over (dead letters).
    EventsAdmin,
    /// Read personal information in clear (D-PII-4).
    PiiRead,
    /// Export, correct and erase a person's information (data-subject rights).
    PiiManage,
    /// Reload the working-day calendars and recompute provisional deadlines (D-SLA-6).
    CalendarsAdmin,
    /// Read incidents, statements, escalations, alerts and watchlists (D-ESC).
    IncidentsRead,
    /// Work incidents: working groups, timelines, drafts, escalations, watchlists, flags.
    IncidentsWrite,
    /// Decide on incidents: declare them, approve statements and malicious-complaint flags.
    IncidentsApprove,
    /// Report mentions from a public-opinion monitoring system (D-ESC-3).
    MentionsReport,
    /// Maintain the VIP register from an institution's CRM (D-ESC-4).
    VipsManage,
    /// Read published knowledge-base articles, search them, lint replies (D-KB).
    KnowledgeRead,
    /// Write knowledge-base articles: drafts, new versions, imports, retirement.
    KnowledgeWrite,
    /// Review knowledge-base versions: publish them or return them to their authors.
    KnowledgeReview,
}

impl Permission {
    pub const ALL: [Permission; 21] = [
        Self::ComplaintsCreate,
        Self::ComplaintsRead,
        Self::ComplaintsClassify,
        Self::CasesRead,
        Self::CasesWrite,
        Self::CasesApprove,
        Self::CasesExtend,
        Self::CasesExtendSpecial,
        Self::EventsRead,
        Self::EventsAdmin,
        Self::PiiRead,
        Self::PiiManage,
        Self::CalendarsAdmin,
        Self::IncidentsRead,
        Self::IncidentsWrite,
        Self::IncidentsApprove,
        Self::MentionsReport,
        Self::VipsManage,
        Self::KnowledgeRead,
        Self::KnowledgeWrite,
        Self::KnowledgeReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComplaintsCreate => "complaints.create",
            Self::ComplaintsRead => "complaints.read",
            Self::ComplaintsClassify => "complaints.classify",
            Self::CasesRead => "cases.read",
            Self::CasesWrite => "cases.write",
            Self::CasesApprove => "cases.approve",
            Self::CasesExtend => "cases.extend",
            Self::CasesExtendSpecial => "cases.extend.special",
            Self::EventsRead => "events.read",
            Self::EventsAdmin => "events.admin",
            Self::PiiRead => "pii.read",
            Self::PiiManage => "pii.manage",
            Self::CalendarsAdmin => "calendars.admin",
            Self::IncidentsRead => "incidents.read",
            Self::IncidentsWrite => "incidents.write",
            Self::IncidentsApprove => "incidents.approve",
            Self::MentionsReport => "mentions.report",
            Self::VipsManage => "vips.manage",
            Self::KnowledgeRead => "knowledge.read",
            Self::KnowledgeWrite => "knowledge.write",
            Self::KnowledgeReview => "knowledge.review",
        }
    }

    /// The permission named `name` (as in [`Permission::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// Who is calling, as verified: subject, roles, organisation unit, permissions and, for a
/// member of staff, their department and employee id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub org_unit: String,
    /// The department within the organisation unit a member of staff works in (as the identity
    /// provider states it): department checks such as taking a transferred case use it, never a
    /// department named in a request. Empty for systems and services.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The employee id (工号) of the person behind the subject, when the caller is a member of
    /// staff: the namespace complaints name staff in, so conflict-of-interest checks (回避)
    /// compare like with like. Empty for systems and services.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staff_id: String,
}

/// The organisation unit that stands for the whole platform (every institution).
pub use crate::names::ROOT_ORG_UNIT;
/// Subjects of service principals start with this.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";
/// The role of service principals.
pub const SERVICE_ROLE: &str = "service";

impl Principal {
    /// Whether a resource owned by `org_unit` lies within this principal's organisation unit
    /// (属地管理): the same unit or one below it (`institutions/acme` covers
    /// `institutions/acme/branches/sh`, not `institutions/acme-2`). A principal without an
    /// organisation unit covers nothing.
    pub fn covers(&self, org_unit: &str) -> bool {
        let own = self.org_unit.as_str();
        own == ROOT_ORG_UNIT
            || (!own.is_empty()
                && (org_unit == own || org_unit.strip_prefix(own).is_some_and(|rest| rest.starts_with('/'))))
    }

    /// A service of the suite acting on its own behalf (signed with its own key; the gateway
    /// never lets a caller claim it).
    pub fn is_service(&self) -> bool {
        self.subject.starts_with(SERVICE_SUBJECT_PREFIX) && self.roles.iter().any(|r| r == SERVICE_ROLE)
    }

    /// The organisation unit lists are restricted to, or `None` for the whole platform.
    pub fn scope(&self) -> Option<String> {
        (self.org_unit != ROOT_ORG_UNIT).then(|| self.org_unit.clone())
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.iter().any(|p| p == permission.as_str())
    }

    pub fn require(&self, permission: Permission) -> Result<(), ServiceError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(format!("the {} permission is required", permission.as_str())))
        }
    }

    /// The identity a service uses for its own calls to other services.
    pub fn service(name: &str, permissions: &[Permission]) -> Self {
        Self {
            subject: format!("{SERVICE_SUBJECT_PREFIX}{name}"),
            roles: vec![SERVICE_ROLE.to_owned()],
            org_unit: String::new(),
            department: String::new(),
            permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            staff_id: String::new(),
        }
    }

    /// The principal a handler was called with, as placed by [`ServiceAuth::interceptor`].
    pub fn of<T>(request: &Request<T>) -> Result<Arc<Principal>, ServiceError> {
        request
            .extensions()
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| ServiceError::Unauthenticated("no verified principal".to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            subject: "user:li".to_owned(),
            roles: vec!["handler".to_owned()],
            org_unit: "institutions/acme".to_owned(),
            department: String::new(),
            permissions: vec!["complaints.read".to_owned()],
            staff_id: String::new(),
        }
    }

    #[test]
    fn organisation_units_cover_themselves_and_what_lies_below() {
        let p = Principal { org_unit: "institutions/acme".to_owned(), ..principal() };
        assert!(p.covers("institutions/acme"));
        assert!(p.covers("institutions/acme/branches/sh"));
        assert!(!p.covers("institutions/acme-2"));
        assert!(!p.covers("institutions"));
        assert!(!p.covers(""));
        assert_eq!(p.scope().as_deref(), Some("institutions/acme"));
        let root = Principal { org_unit: ROOT_ORG_UNIT.to_owned(), ..principal() };
        assert!(root.covers("institutions/anything"));
        assert_eq!(root.scope(), None);
        let nobody = Principal { org_unit: String::new(), ..principal() };
        assert!(!nobody.covers("institutions/acme"));
    }

    #[test]
    fn permissions_are_named_and_parsed() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("pii"), None);
    }

    #[test]
    fn permissions_are_checked() {
        let p = principal();
        assert!(p.require(Permission::ComplaintsRead).is_ok());
        assert!(matches!(p.require(Permission::PiiRead), Err(ServiceError::PermissionDenied(_))));
    }
}
