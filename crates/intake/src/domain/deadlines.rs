//! The receipt's deadlines (D-SLA): the clocks a complaint's grade sets, counted on the
//! working-day calendar from the moment it was accepted.

use chrono::{DateTime, Utc};
use redress_calendar::{CalendarError, DeadlineCalculator, Grade, SlaPolicy};
use redress_platform::time::to_timestamp;
use redress_proto::redress::common::v1::{Deadlines, Grade as ProtoGrade, PendingDeadline};

/// The receipt's deadlines. One that needs a year with no calendar loaded is left unset and
/// listed in `pending_deadlines` (never guessed): the complaint is still recorded, because
/// refusing it would lose it. Any other calendar failure is an error.
pub fn receipt_deadlines(
    calculator: &DeadlineCalculator,
    policy: &SlaPolicy,
    accepted: DateTime<Utc>,
    grade: Grade,
) -> Result<Deadlines, CalendarError> {
    let targets = policy.targets(grade);
    let mut deadlines = Deadlines {
        time_zone: calculator.time_zone().name().to_owned(),
        grade: grade_to_proto(grade) as i32,
        ..Deadlines::default()
    };
    let clocks = [
        ("first_response_due_time", targets.first_response),
        ("resolution_due_time", targets.resolution),
        ("regulatory_decision_due_time", policy.regulatory_decision),
    ];
    for (field, period) in clocks {
        let due = match calculator.due(accepted, period) {
            Ok(due) => Some(to_timestamp(due)),
            Err(CalendarError::YearNotLoaded { year }) => {
                deadlines.pending_deadlines.push(PendingDeadline {
                    deadline: field.to_owned(),
                    reason: format!("no working-day calendar is loaded for {year}"),
                    missing_calendar_year: year,
                });
                None
            }
            Err(other) => return Err(other),
        };
        match field {
            "first_response_due_time" => deadlines.first_response_due_time = due,
            "resolution_due_time" => deadlines.resolution_due_time = due,
            _ => deadlines.regulatory_decision_due_time = due,
        }
    }
    Ok(deadlines)
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
