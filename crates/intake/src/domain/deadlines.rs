//! The receipt's deadlines (D-SLA): the clocks a complaint's grade sets, counted on the
//! working-day calendar from the moment it was accepted, and their revision once the official
//! calendar of a year they counted provisionally is loaded (D-SLA-6).

use chrono::{DateTime, Utc};
use redress_calendar::{CalendarError, DeadlineCalculator, Grade, Period, SlaPolicy};
use redress_platform::events::NewEvent;
use redress_platform::time::{from_timestamp, to_timestamp};
use redress_proto::redress::common::v1::{Deadlines, Grade as ProtoGrade};
use redress_proto::redress::intake::v1::{Complaint, ComplaintState, ReceiptDeadlinesRevised};

use super::lifecycle::Changed;

/// The receipt's deadlines. One that counts a day of a year with no official calendar loaded
/// is computed on that year's provisional calendar and marked provisional, with why: the
/// complaint always gets every deadline. Only a date outside every year a calendar can be
/// built for is an error.
pub fn receipt_deadlines(
    calculator: &DeadlineCalculator,
    policy: &SlaPolicy,
    accepted: DateTime<Utc>,
    grade: Grade,
) -> Result<Deadlines, CalendarError> {
    let targets = policy.targets(grade);
    let due = |period: Period| -> Result<(Option<prost_types::Timestamp>, bool, String), CalendarError> {
        let due = calculator.due_explained(accepted, period)?;
        let reason = due.provisional.map(|p| p.reason);
        Ok((Some(to_timestamp(due.at)), reason.is_some(), reason.unwrap_or_default()))
    };
    let (first_response_due_time, first_response_provisional, first_response_provisional_reason) =
        due(targets.first_response)?;
    let (resolution_due_time, resolution_provisional, resolution_provisional_reason) = due(targets.resolution)?;
    let (regulatory_decision_due_time, regulatory_decision_provisional, regulatory_decision_provisional_reason) =
        due(policy.regulatory_decision)?;
    Ok(Deadlines {
        first_response_due_time,
        resolution_due_time,
        regulatory_decision_due_time,
        time_zone: calculator.time_zone().name().to_owned(),
        grade: grade_to_proto(grade) as i32,
        first_response_provisional,
        first_response_provisional_reason,
        resolution_provisional,
        resolution_provisional_reason,
        regulatory_decision_provisional,
        regulatory_decision_provisional_reason,
        ..Deadlines::default()
    })
}

/// Whether any deadline of the receipt counts a provisional year.
pub fn is_provisional(deadlines: &Deadlines) -> bool {
    deadlines.first_response_provisional
        || deadlines.resolution_provisional
        || deadlines.regulatory_decision_provisional
}

/// The complaint with its receipt's deadlines recomputed on `calculator` (for the grade they
/// were computed for, from the acceptance instant) and ReceiptDeadlinesRevised announcing it;
/// `None` when nothing moved or stopped being provisional, or when they cannot be recomputed.
pub fn revised(mut complaint: Complaint, calculator: &DeadlineCalculator, policy: &SlaPolicy) -> Changed {
    let receipt = complaint.receipt.as_mut()?;
    let previous = receipt.deadlines.clone()?;
    let accepted = receipt.accept_time.as_ref().and_then(from_timestamp)?;
    let deadlines = match receipt_deadlines(calculator, policy, accepted, grade_from_proto(previous.grade)) {
        Ok(deadlines) => deadlines,
        Err(e) => {
            tracing::error!(complaint = %complaint.name, error = %e, "receipt deadlines cannot be recomputed");
            return None;
        }
    };
    if deadlines == previous {
        return None;
    }
    receipt.deadlines = Some(deadlines.clone());
    // A complainant who withdrew is owed no decision, so nothing to tell them.
    let withdrawn = complaint.state == ComplaintState::Withdrawn as i32;
    let moved = deadlines.regulatory_decision_due_time != previous.regulatory_decision_due_time;
    let complainant_notice = if moved && !withdrawn {
        decision_notice(&complaint.complaint_number, &deadlines, calculator)
    } else {
        String::new()
    };
    let event = NewEvent::new(
        complaint.name.clone(),
        complaint.org_unit.clone(),
        &ReceiptDeadlinesRevised {
            complaint: complaint.name.clone(),
            complaint_number: complaint.complaint_number.clone(),
            previous_deadlines: Some(previous),
            deadlines: Some(deadlines),
            complainant_notice,
        },
    );
    Some((complaint, event))
}

/// The notice telling the complainant the decision deadline now stands on the official
/// holiday arrangement, in zh-CN.
fn decision_notice(number: &str, deadlines: &Deadlines, calculator: &DeadlineCalculator) -> String {
    let due = deadlines.regulatory_decision_due_time.as_ref().and_then(from_timestamp);
    // The due instant is 24:00 of the last day, i.e. the start of the next local date.
    let day =
        due.map(|d| (d.with_timezone(&calculator.time_zone()) - chrono::TimeDelta::days(1)).format("%Y年%m月%d日"));
    match day {
        Some(day) => format!(
            "您的投诉（编号 {number}）的处理期限已按国务院公布的节假日安排重新确定，我们将于 {day} 24 时前作出处理决定。"
        ),
        None => format!("您的投诉（编号 {number}）的处理期限已按国务院公布的节假日安排重新确定，具体日期将另行告知。"),
    }
}

pub fn grade_from_proto(grade: i32) -> Grade {
    match ProtoGrade::try_from(grade) {
        Ok(ProtoGrade::Important) => Grade::Important,
        Ok(ProtoGrade::Urgent) => Grade::Urgent,
        Ok(ProtoGrade::Major) => Grade::Major,
        _ => Grade::General,
    }
}

pub fn grade_to_proto(grade: Grade) -> ProtoGrade {
    match grade {
        Grade::General => ProtoGrade::General,
        Grade::Important => ProtoGrade::Important,
        Grade::Urgent => ProtoGrade::Urgent,
        Grade::Major => ProtoGrade::Major,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use redress_proto::redress::intake::v1::Receipt;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// D-SLA-6: received on 2026-12-20 with no 2027 calendar, the 15-day decision deadline is
    /// set (24:00 on Mon 2027-01-04) and provisional; the hour and 2026 ones are not.
    #[test]
    fn a_receipt_reaching_a_year_without_a_file_has_provisional_deadlines() {
        let calc = DeadlineCalculator::china();
        let d =
            receipt_deadlines(&calc, &SlaPolicy::default(), at("2026-12-20T10:00:00+08:00"), Grade::General).unwrap();
        assert_eq!(d.regulatory_decision_due_time, Some(to_timestamp(at("2027-01-04T16:00:00Z"))));
        assert!(d.regulatory_decision_provisional && d.regulatory_decision_provisional_reason.contains("2027"));
        assert_eq!(d.resolution_due_time, Some(to_timestamp(at("2026-12-29T16:00:00Z"))));
        assert!(!d.resolution_provisional && !d.first_response_provisional);
        assert!(is_provisional(&d));
        #[allow(deprecated)]
        let pending = &d.pending_deadlines;
        assert!(pending.is_empty(), "nothing is pending any more");
    }

    #[test]
    fn a_revision_announces_a_moved_decision_deadline_once() {
        let provisional = DeadlineCalculator::china();
        let policy = SlaPolicy::default();
        let accepted = at("2026-12-20T10:00:00+08:00");
        let deadlines = receipt_deadlines(&provisional, &policy, accepted, Grade::General).unwrap();
        let complaint = Complaint {
            name: "complaints/1".to_owned(),
            complaint_number: "2026122000000001".to_owned(),
            receipt: Some(Receipt {
                accept_time: Some(to_timestamp(accepted)),
                deadlines: Some(deadlines),
                ..Receipt::default()
            }),
            ..Complaint::default()
        };
        assert!(revised(complaint.clone(), &provisional, &policy).is_none(), "the same calendar moves nothing");
        let official = redress_calendar::WorkingCalendar::from_year_toml(&[(
            "2027.toml",
            "year = 2027\n[[holidays]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-04\n",
        )])
        .unwrap();
        let calendar = redress_calendar::WorkingCalendar::china().with_provisional_years().merged(official);
        let loaded = DeadlineCalculator::new(std::sync::Arc::new(calendar), redress_calendar::DEFAULT_TIME_ZONE);
        let withdrawn = Complaint { state: ComplaintState::Withdrawn as i32, ..complaint.clone() };
        let (_, event) = revised(withdrawn, &loaded, &policy).unwrap();
        let notice =
            prost::Message::decode(event.payload.as_slice()).map(|r: ReceiptDeadlinesRevised| r.complainant_notice);
        assert_eq!(notice.unwrap(), "", "a withdrawn complaint's deadlines move, but no decision is promised");
        let (changed, event) = revised(complaint, &loaded, &policy).unwrap();
        let now = changed.receipt.unwrap().deadlines.unwrap();
        assert_eq!(now.regulatory_decision_due_time, Some(to_timestamp(at("2027-01-05T16:00:00Z"))));
        assert!(!is_provisional(&now));
        assert_eq!(event.event_type, "redress.intake.v1.ReceiptDeadlinesRevised");
    }

    fn institutions() -> redress_calendar::Institutions {
        let config: redress_calendar::RegimeConfig = toml::from_str(
            r#"
            [institutions.cn-bank]
            regime = "cbirc"
            [institutions.shop]
            regime = "samr"
            [institutions.uk-bank]
            regime = "fca-disp"
            [institutions.us-bank]
            regime = "cfpb"
            "#,
        )
        .unwrap();
        config.resolve("Asia/Shanghai", "", &SlaPolicy::default()).unwrap()
    }

    /// D-SLA-10, worked by hand: a general complaint received on Mon 2 March 2026 at 10:00
    /// local time. Day periods skip the receipt date and end at 24:00 local of the last day.
    #[test]
    fn each_institution_counts_on_its_regime_calendar_and_zone() {
        let institutions = institutions();
        // (institution, received, zone, first response, resolution, regulatory decision)
        let table = [
            // CBIRC: 24 h; 7 working days Mar 3–11; 15 days end Tue Mar 17.
            (
                "institutions/cn-bank/branches/sh",
                "2026-03-02T10:00:00+08:00",
                "Asia/Shanghai",
                "2026-03-03T10:00:00+08:00",
                "2026-03-12T00:00:00+08:00",
                "2026-03-18T00:00:00+08:00",
            ),
            // SAMR: accept or reject within 7 working days, the same Mar 11.
            (
                "institutions/shop",
                "2026-03-02T10:00:00+08:00",
                "Asia/Shanghai",
                "2026-03-03T10:00:00+08:00",
                "2026-03-12T00:00:00+08:00",
                "2026-03-12T00:00:00+08:00",
            ),
            // FCA DISP in London (GMT until 29 March, BST after): 8 weeks = 56 days end Mon
            // Apr 27, a business day (Easter Monday is Apr 6).
            (
                "institutions/uk-bank",
                "2026-03-02T10:00:00+00:00",
                "Europe/London",
                "2026-03-03T10:00:00+00:00",
                "2026-03-12T00:00:00+00:00",
                "2026-04-28T00:00:00+01:00",
            ),
            // CFPB in New York (EST until 8 March, EDT after): 60 days end Fri May 1.
            (
                "institutions/us-bank",
                "2026-03-02T10:00:00-05:00",
                "America/New_York",
                "2026-03-03T10:00:00-05:00",
                "2026-03-12T00:00:00-04:00",
                "2026-05-02T00:00:00-04:00",
            ),
        ];
        for (unit, received, zone, first, resolution, decision) in table {
            let regime = institutions.of(unit);
            let d = receipt_deadlines(regime.calculator(), regime.policy(), at(received), Grade::General).unwrap();
            assert_eq!(d.time_zone, zone, "{unit}");
            assert_eq!(d.first_response_due_time, Some(to_timestamp(at(first))), "{unit}");
            assert_eq!(d.resolution_due_time, Some(to_timestamp(at(resolution))), "{unit}");
            assert_eq!(d.regulatory_decision_due_time, Some(to_timestamp(at(decision))), "{unit}");
            assert!(!is_provisional(&d), "{unit}");
        }
    }

    /// A year without a file is counted on the calendar's own provisional rules, never refused.
    /// Worked by hand: a UK complaint received Sun 20 December 2026, FCA DISP's eight weeks
    /// (56 calendar days) run to Sun 14 February 2027; the calculator moves a calendar-day end
    /// off a rest day (D-SLA-5), so the decision is due at the end of Mon 15 February (not a
    /// bank holiday on the 2027 rules), 24:00 GMT.
    #[test]
    fn a_year_without_a_file_is_provisional_on_every_calendar() {
        let institutions = institutions();
        let uk = institutions.of("institutions/uk-bank");
        let d =
            receipt_deadlines(uk.calculator(), uk.policy(), at("2026-12-20T10:00:00+00:00"), Grade::General).unwrap();
        assert_eq!(d.regulatory_decision_due_time, Some(to_timestamp(at("2027-02-16T00:00:00Z"))));
        assert!(d.regulatory_decision_provisional, "{d:?}");
        let reason = &d.regulatory_decision_provisional_reason;
        assert!(reason.contains("gb-eng") && reason.contains("2027") && reason.contains("one-off"), "{reason}");
        assert!(is_provisional(&d));
        let us = institutions.of("institutions/us-bank");
        let d =
            receipt_deadlines(us.calculator(), us.policy(), at("2026-12-20T10:00:00-05:00"), Grade::General).unwrap();
        assert!(d.regulatory_decision_provisional && d.regulatory_decision_provisional_reason.contains("us"));
        let cn = institutions.of("institutions/cn-bank");
        let d = receipt_deadlines(cn.calculator(), cn.policy(), at("2026-12-20T10:00:00+08:00"), Grade::General);
        assert!(d.unwrap().regulatory_decision_provisional);
    }
}
