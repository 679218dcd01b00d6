//! Who took a complaint (首问负责, D-INT-5) and the complainant's answer when the recorded
//! content was read back to them (向客户确认投诉内容): the values a request gives, checked and
//! put in their one stored form.

use chrono::{DateTime, Utc};
use redress_platform::error::Violations;
use redress_platform::names::{OrgUnit, ROOT_ORG_UNIT, Text};
use redress_platform::principal::{Principal, SERVICE_SUBJECT_PREFIX};
use redress_platform::time::to_timestamp;
use redress_proto::redress::intake::v1::{ConfirmationMethod, ContentConfirmation, FirstContact};

use super::validate::past_instant;

/// A first contact a channel system names (at `path`), checked: the staff id is required, the
/// subject (when given) names a person, the unit (when given) lies within `institution`.
/// Returns it trimmed, its unit canonical (the complaint's, `complaint_unit`, when not given);
/// `recorded_by` is left to the caller. What it returns stands only when `v` stays empty.
pub fn named_first_contact(
    v: &mut Violations,
    path: &str,
    given: &FirstContact,
    complaint_unit: Option<&OrgUnit>,
) -> FirstContact {
    Text::Name.check(v, &format!("{path}.staff_id"), &given.staff_id, true);
    Text::Name.check(v, &format!("{path}.subject"), &given.subject, false);
    if given.subject.trim().starts_with(SERVICE_SUBJECT_PREFIX) {
        v.add(format!("{path}.subject"), "must name a member of staff, not a service");
    }
    Text::Name.check(v, &format!("{path}.department"), &given.department, false);
    let org_unit = if given.org_unit.trim().is_empty() {
        complaint_unit.cloned()
    } else {
        let field = format!("{path}.org_unit");
        let unit = OrgUnit::parse(v, &field, &given.org_unit);
        if let (Some(unit), Some(complaint_unit)) = (&unit, complaint_unit)
            && unit.institution() != complaint_unit.institution()
        {
            v.add(field, format!("must lie within the complaint's institution {}", complaint_unit.institution()));
        }
        unit
    };
    FirstContact {
        subject: given.subject.trim().to_owned(),
        staff_id: given.staff_id.trim().to_owned(),
        org_unit: org_unit.map(OrgUnit::into_string).unwrap_or_default(),
        department: given.department.trim().to_owned(),
        recorded_by: String::new(),
    }
}

/// The first contact recorded with a complaint owned by `complaint_unit` that `caller`
/// submits: the one the request named, else the caller when it is a member of staff (a
/// principal with a staff id: itself, its staff id and its unit), else nobody. Always recorded
/// by the caller.
pub fn recorded_first_contact(
    named: Option<FirstContact>,
    caller: &Principal,
    complaint_unit: &OrgUnit,
) -> Option<FirstContact> {
    let staff_id = caller.staff_id.trim();
    let contact = named.or_else(|| {
        (!staff_id.is_empty()).then(|| FirstContact {
            subject: caller.subject.clone(),
            staff_id: staff_id.to_owned(),
            // A platform-wide caller sits in no unit of the institution: the complaint's is
            // where it took the complaint.
            org_unit: if caller.org_unit.is_empty() || caller.org_unit == ROOT_ORG_UNIT {
                complaint_unit.as_str().to_owned()
            } else {
                caller.org_unit.clone()
            },
            department: String::new(),
            recorded_by: String::new(),
        })
    })?;
    Some(FirstContact { recorded_by: caller.subject.clone(), ..contact })
}

/// The complainant's answer at `path`, checked and recorded by `recorded_by` at `now`: the
/// method is set, corrections are given exactly when the content was not confirmed, a note
/// explains an OTHER method, the time (now when not given) does not lie in the future. Whether
/// it lies before the complaint was received is the complaint's to say (see
/// [`super::lifecycle::confirmed`]). Corrections stay verbatim; the note is trimmed. What it
/// returns stands only when `v` stays empty.
pub fn confirmation(
    v: &mut Violations,
    path: &str,
    given: Option<&ContentConfirmation>,
    recorded_by: &str,
    now: DateTime<Utc>,
) -> Option<ContentConfirmation> {
    let Some(given) = given else {
        v.add(path, "must be set");
        return None;
    };
    let method = match ConfirmationMethod::try_from(given.method) {
        Ok(ConfirmationMethod::Unspecified) => {
            v.add(format!("{path}.method"), "required: how the content was read back");
            None
        }
        Ok(method) => Some(method),
        Err(_) => {
            v.add(format!("{path}.method"), "unknown confirmation method");
            None
        }
    };
    let corrections = format!("{path}.corrections");
    if given.confirmed {
        if !given.corrections.trim().is_empty() {
            v.add(corrections, "must be empty when the complainant confirmed the content as recorded");
        }
    } else if given.corrections.trim().is_empty() {
        v.add(corrections, "required when the complainant did not confirm the content: what they corrected");
    } else {
        Text::Long.check(v, &corrections, &given.corrections, true);
    }
    Text::Reason.check(v, &format!("{path}.note"), &given.note, method == Some(ConfirmationMethod::Other));
    let at = past_instant(v, &format!("{path}.confirm_time"), given.confirm_time.as_ref(), now);
    Some(ContentConfirmation {
        confirmed: given.confirmed,
        method: method.map_or(0, |m| m as i32),
        corrections: if given.confirmed { String::new() } else { given.corrections.clone() },
        note: given.note.trim().to_owned(),
        confirm_time: Some(to_timestamp(at)),
        recorded_by: recorded_by.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn fields(v: Violations) -> Vec<String> {
        match redress_platform::ServiceError::from(v) {
            redress_platform::ServiceError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn unit(s: &str) -> OrgUnit {
        OrgUnit::try_from_str(s).unwrap()
    }

    fn caller(staff_id: &str, org_unit: &str) -> Principal {
        Principal {
            subject: "user:li".to_owned(),
            org_unit: org_unit.to_owned(),
            staff_id: staff_id.to_owned(),
            ..Principal::default()
        }
    }

    #[test]
    fn a_named_first_contact_is_trimmed_canonical_and_defaults_to_the_complaints_unit() {
        let complaint = unit("institutions/demo-bank/branches/sh");
        let mut v = Violations::new();
        let given = FirstContact {
            subject: " user:wang ".to_owned(),
            staff_id: " E2002 ".to_owned(),
            org_unit: "Institutions/Demo-Bank/call-centres/sh/".to_owned(),
            department: " 客服中心 ".to_owned(),
            recorded_by: "forged".to_owned(),
        };
        let contact = named_first_contact(&mut v, "complaint.first_contact", &given, Some(&complaint));
        assert!(v.is_empty());
        assert_eq!(
            contact,
            FirstContact {
                subject: "user:wang".to_owned(),
                staff_id: "E2002".to_owned(),
                org_unit: "institutions/demo-bank/call-centres/sh".to_owned(),
                department: "客服中心".to_owned(),
                recorded_by: String::new(),
            }
        );
        let bare = FirstContact { staff_id: "E2002".to_owned(), ..FirstContact::default() };
        let contact = named_first_contact(&mut v, "complaint.first_contact", &bare, Some(&complaint));
        assert_eq!(contact.org_unit, complaint.as_str());
    }

    #[test]
    fn a_named_first_contact_needs_a_staff_id_a_person_and_a_unit_of_the_institution() {
        let complaint = unit("institutions/demo-bank/branches/sh");
        let given = FirstContact {
            subject: "service:case-workflow".to_owned(),
            staff_id: "  ".to_owned(),
            org_unit: "institutions/other-bank/branches/sh".to_owned(),
            department: "a\nb".to_owned(),
            recorded_by: String::new(),
        };
        let mut v = Violations::new();
        named_first_contact(&mut v, "complaint.first_contact", &given, Some(&complaint));
        assert_eq!(
            fields(v),
            [
                "complaint.first_contact.staff_id",
                "complaint.first_contact.subject",
                "complaint.first_contact.department",
                "complaint.first_contact.org_unit",
            ]
        );
        let mut v = Violations::new();
        let bad_unit = FirstContact { staff_id: "E1".to_owned(), org_unit: "branches/sh".to_owned(), ..given };
        named_first_contact(&mut v, "first_contact", &bad_unit, Some(&complaint));
        assert!(fields(v).contains(&"first_contact.org_unit".to_owned()));
        let mut v = Violations::new();
        let long = FirstContact { staff_id: "E".repeat(201), ..FirstContact::default() };
        named_first_contact(&mut v, "first_contact", &long, Some(&complaint));
        assert_eq!(fields(v), ["first_contact.staff_id"]);
    }

    #[test]
    fn the_first_contact_is_the_named_one_else_a_calling_member_of_staff_else_nobody() {
        let complaint = unit("institutions/demo-bank/branches/sh");
        let clerk = caller(" E1001 ", "institutions/demo-bank/branches/sh/counters/1");
        let recorded = recorded_first_contact(None, &clerk, &complaint).unwrap();
        assert_eq!(
            recorded,
            FirstContact {
                subject: "user:li".to_owned(),
                staff_id: "E1001".to_owned(),
                org_unit: "institutions/demo-bank/branches/sh/counters/1".to_owned(),
                department: String::new(),
                recorded_by: "user:li".to_owned(),
            }
        );
        let named = FirstContact { staff_id: "E2002".to_owned(), ..FirstContact::default() };
        let recorded = recorded_first_contact(Some(named), &clerk, &complaint).unwrap();
        assert_eq!((recorded.staff_id.as_str(), recorded.recorded_by.as_str()), ("E2002", "user:li"));
        assert_eq!(recorded_first_contact(None, &caller("", "institutions/demo-bank"), &complaint), None);
        let platform = recorded_first_contact(None, &caller("E9", "/"), &complaint).unwrap();
        assert_eq!(platform.org_unit, complaint.as_str());
    }

    fn answer(confirmed: bool, method: ConfirmationMethod, corrections: &str, note: &str) -> ContentConfirmation {
        ContentConfirmation {
            confirmed,
            method: method as i32,
            corrections: corrections.to_owned(),
            note: note.to_owned(),
            ..ContentConfirmation::default()
        }
    }

    #[test]
    fn a_confirmation_is_recorded_by_the_caller_at_now_with_corrections_verbatim() {
        let now = Utc::now();
        let mut v = Violations::new();
        let given = answer(false, ConfirmationMethod::ReadBackCall, "  金额应为 300 元\n", " 录音 R-1 ");
        let recorded = confirmation(&mut v, "confirmation", Some(&given), "user:li", now).unwrap();
        assert!(v.is_empty());
        assert_eq!(recorded.corrections, "  金额应为 300 元\n", "the complainant's words stay as said");
        assert_eq!(recorded.note, "录音 R-1");
        assert_eq!(recorded.confirm_time, Some(to_timestamp(now)));
        assert_eq!(recorded.recorded_by, "user:li");
        let earlier = ContentConfirmation {
            confirm_time: Some(to_timestamp(now - TimeDelta::hours(1))),
            recorded_by: "forged".to_owned(),
            ..answer(true, ConfirmationMethod::SignedInPerson, "", "")
        };
        let recorded = confirmation(&mut v, "confirmation", Some(&earlier), "user:li", now).unwrap();
        assert_eq!((recorded.confirm_time, recorded.recorded_by.as_str()), (earlier.confirm_time, "user:li"));
    }

    #[test]
    fn a_confirmation_needs_a_method_corrections_when_refused_a_note_for_other_and_a_past_time() {
        let now = Utc::now();
        let refuse = |given: Option<ContentConfirmation>| {
            let mut v = Violations::new();
            confirmation(&mut v, "confirmation", given.as_ref(), "user:li", now);
            fields(v)
        };
        assert_eq!(refuse(None), ["confirmation"]);
        assert_eq!(
            refuse(Some(answer(false, ConfirmationMethod::Unspecified, " ", ""))),
            ["confirmation.method", "confirmation.corrections"]
        );
        assert_eq!(
            refuse(Some(ContentConfirmation { method: 42, ..answer(true, ConfirmationMethod::Online, "", "") })),
            ["confirmation.method"]
        );
        assert_eq!(
            refuse(Some(answer(true, ConfirmationMethod::Online, "其实是 300 元", ""))),
            ["confirmation.corrections"]
        );
        assert_eq!(refuse(Some(answer(true, ConfirmationMethod::Other, "", ""))), ["confirmation.note"]);
        assert_eq!(
            refuse(Some(answer(false, ConfirmationMethod::MessageReply, &"字".repeat(20_001), ""))),
            ["confirmation.corrections"]
        );
        let future = ContentConfirmation {
            confirm_time: Some(to_timestamp(now + TimeDelta::hours(1))),
            ..answer(true, ConfirmationMethod::Online, "", "")
        };
        assert_eq!(refuse(Some(future)), ["confirmation.confirm_time"]);
    }
}
