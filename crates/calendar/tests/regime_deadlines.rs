//! Hand-worked deadlines for each regime preset (D-SLA-10), on its calendar and in its time
//! zone. Every expected instant is worked out in the comment next to it. "24:00 of D" is the
//! local midnight that starts D+1: in Asia/Shanghai D 16:00 UTC; in Europe/London D+1 00:00
//! UTC in winter (GMT) and D 23:00 UTC in summer (BST, from 29 March to 25 October 2026); in
//! America/New_York D+1 05:00 UTC in winter (EST) and D+1 04:00 UTC in summer (EDT, from 8
//! March to 1 November 2026).
//!
//! The calculator moves the end of a calendar-day period off a rest day (D-SLA-5, Civil Code
//! Art. 203) for every regime. DISP 1.6.2R and the CFPB's days have no such rule, so on those
//! rows the due instant is later than the regime's own last day; the comments name both.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use redress_calendar::{CalendarError, DeadlineCalculator, ExcludedTime, Period, Regime, WorkingCalendar};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn preset(id: &str) -> Regime {
    Regime::preset(id).unwrap()
}

fn period(regime: &Regime, clock: &str) -> Period {
    regime.clock(clock).unwrap().period()
}

fn extension(regime: &Regime, clock: &str, index: usize) -> Period {
    regime.clock(clock).unwrap().extensions()[index].to()
}

/// A calculator on `calendar` in `tz`, after checking they are the regime's.
fn calculator(regime: &Regime, calendar: WorkingCalendar, tz: Tz) -> DeadlineCalculator {
    assert_eq!(WorkingCalendar::by_name(regime.calendar_name()), Some(calendar.clone()));
    assert_eq!(regime.time_zone(), tz);
    DeadlineCalculator::new(Arc::new(calendar), tz)
}

/// (case, period, accepted_at, expected due)
fn check(calc: &DeadlineCalculator, rows: &[(&str, Period, &str, &str)]) {
    for (case, period, accepted, expected) in rows {
        assert_eq!(calc.due(at(accepted), *period), Ok(at(expected)), "{case}: {accepted} + {period:?}");
    }
}

#[test]
fn cbirc() {
    let regime = preset("cbirc");
    let calc = calculator(&regime, WorkingCalendar::china(), chrono_tz::Asia::Shanghai);
    let decision = period(&regime, "regulatory_decision");
    check(
        &calc,
        &[
            // Tue 2026-03-10: day 1 is Wed 11, day 15 Wed 25, a working day.
            ("decision", decision, "2026-03-10T10:00:00+08:00", "2026-03-25T16:00:00Z"),
            // Fri 2026-03-06 + 15 = Sat 21, a rest day: runs to Mon 23.
            ("decision ends on a saturday", decision, "2026-03-06T10:00:00+08:00", "2026-03-23T16:00:00Z"),
            // Extended to 30: Tue 03-10 + 30 = Thu 04-09.
            (
                "decision to 30",
                extension(&regime, "regulatory_decision", 0),
                "2026-03-10T10:00:00+08:00",
                "2026-04-09T16:00:00Z",
            ),
            // Extended to 60: 03-10 + 60 = Sat 05-09, a make-up working day (调休上班): stays.
            (
                "decision to 60",
                extension(&regime, "regulatory_decision", 1),
                "2026-03-10T10:00:00+08:00",
                "2026-05-09T16:00:00Z",
            ),
            // Decided Sun 2026-09-06: + 30 = Tue 10-06, inside National Day (10-01..07): Thu 10-08.
            (
                "review ends in a holiday",
                period(&regime, "review_decision"),
                "2026-09-06T15:00:00+08:00",
                "2026-10-08T16:00:00Z",
            ),
            // Referral Tue 2026-09-29: Wed 30 (1), 10-01..07 holidays, Thu 10-08 (2), Fri 10-09 (3).
            (
                "referral across national day",
                period(&regime, "referral_forwarding"),
                "2026-09-29T10:00:00+08:00",
                "2026-10-09T16:00:00Z",
            ),
            // Review window, 30 days from a decision on Mon 2026-06-01: Wed 07-01.
            ("review window", period(&regime, "review_window"), "2026-06-01T09:00:00+08:00", "2026-07-01T16:00:00Z"),
        ],
    );
    // The grade targets are the policy the services run on.
    let policy = regime.sla_policy().unwrap();
    let major = policy.major;
    check(
        &calc,
        &[
            // One hour from the exact instant.
            ("major first response", major.first_response, "2026-03-10T10:00:00+08:00", "2026-03-10T03:00:00Z"),
            // Thu 2026-04-30: May 1–5 holidays, Wed 05-06 is day 1.
            ("major resolution", major.resolution, "2026-04-30T10:00:00+08:00", "2026-05-06T16:00:00Z"),
        ],
    );
}

#[test]
fn samr() {
    let regime = preset("samr");
    let calc = calculator(&regime, WorkingCalendar::china(), chrono_tz::Asia::Shanghai);
    let accept = period(&regime, "acceptance_decision");
    let mediation = period(&regime, "mediation");
    check(
        &calc,
        &[
            // Mon 2026-03-09: Tue 10 (1) .. Fri 13 (4), Mon 16 (5), Tue 17 (6), Wed 18 (7).
            ("accept or reject", accept, "2026-03-09T10:00:00+08:00", "2026-03-18T16:00:00Z"),
            // Thu 2026-04-30: May 1–5 holidays, Wed 6 (1), Thu 7 (2), Fri 8 (3), Sat 9 make-up
            // (4), Mon 11 (5), Tue 12 (6), Wed 13 (7).
            ("accept across labour day", accept, "2026-04-30T10:00:00+08:00", "2026-05-13T16:00:00Z"),
            // Thu 2026-02-12: Fri 13 (1), Sat 14 make-up (2), 15–23 Spring Festival, Tue 24 (3)
            // .. Fri 27 (6), Sat 28 make-up (7): ends on a Saturday that is a working day.
            ("accept ends on a make-up saturday", accept, "2026-02-12T10:00:00+08:00", "2026-02-28T16:00:00Z"),
            // Received Sat 2026-03-14: Mon 16 (1) .. Fri 20 (5), Mon 23 (6), Tue 24 (7).
            ("received on a saturday", accept, "2026-03-14T11:00:00+08:00", "2026-03-24T16:00:00Z"),
            // Accepted Mon 2026-03-02: 21 working days to Tue 03-31, 3 to Fri 04-03 (24), Qingming
            // 04-04..06, 04-07..10 (28), three full weeks to Thu 04-30 (42), May 1–5 holidays,
            // Wed 05-06 (43), Thu 07 (44), Fri 08 (45).
            ("mediation", mediation, "2026-03-02T10:00:00+08:00", "2026-05-08T16:00:00Z"),
        ],
    );
    // Testing and appraisal time is not counted: paused Tue 03-10 09:00, resumed Tue 03-17 09:00.
    // Left at the pause: 03-10..05-08 counts 40 working days (03-03, 04, 05, 06 and 09 are
    // behind it); from Tue 03-17 on, the 40th is five working days after Fri 05-08: Sat 09
    // (make-up), Mon 11, Tue 12, Wed 13, Thu 14.
    assert_eq!(regime.clock("mediation").unwrap().excluded_time(), [ExcludedTime::TestingOrAppraisal]);
    let pauses = [(at("2026-03-10T09:00:00+08:00"), at("2026-03-17T09:00:00+08:00"))];
    assert_eq!(
        calc.due_with_pauses(at("2026-03-02T10:00:00+08:00"), mediation, &pauses),
        Ok(at("2026-05-14T16:00:00Z"))
    );
}

#[test]
fn fca_disp() {
    let regime = preset("fca-disp");
    let calc = calculator(&regime, WorkingCalendar::england_and_wales(), chrono_tz::Europe::London);
    let eight_weeks = period(&regime, "final_response");
    let payments = period(&regime, "payment_services_final_response");
    check(
        &calc,
        &[
            // Mon 2026-03-02 (GMT) + 56 days = Mon 04-27, in BST: 23:00 UTC.
            ("final response", eight_weeks, "2026-03-02T10:00:00Z", "2026-04-27T23:00:00Z"),
            // Sat 2026-01-10 + 56 = Sat 03-07, the end of the eighth week under DISP; the
            // calculator runs it to Mon 03-09 (GMT).
            ("final response ends on a saturday", eight_weeks, "2026-01-10T12:00:00Z", "2026-03-10T00:00:00Z"),
            // Wed 2026-04-01 (BST): Thu 2 (1), Good Friday 3 and Easter Monday 6 are bank
            // holidays, Tue 7 (2) .. Fri 10 (5), two weeks to Fri 24 (15).
            ("payments across easter", payments, "2026-04-01T09:00:00+01:00", "2026-04-24T23:00:00Z"),
            // With a holding reply, 35: from Fri 04-24 (15), Mon 27 .. Thu 30 (19), Fri 05-01
            // (20), Mon 05-04 early May bank holiday, Tue 5 .. Fri 8 (24), two weeks to Fri 22
            // (34), Mon 25 spring bank holiday, Tue 05-26 (35).
            (
                "payments with holding reply",
                extension(&regime, "payment_services_final_response", 0),
                "2026-04-01T09:00:00+01:00",
                "2026-05-26T23:00:00Z",
            ),
            // Thu 2026-12-24: Christmas Fri 25, weekend, Boxing Day substitute Mon 28, then Tue 29
            // (1), Wed 30 (2), Thu 31 (3); 24:00 GMT.
            (
                "summary resolution over christmas",
                period(&regime, "summary_resolution"),
                "2026-12-24T16:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ],
    );
    // Mon 2026-12-14: 11 business days to Thu 12-31, then 2027, which has no file: this
    // calculator does not count years without one.
    assert_eq!(calc.due(at("2026-12-14T10:00:00Z"), payments), Err(CalendarError::YearNotLoaded { year: 2027 }));
}

#[test]
fn cfpb() {
    let regime = preset("cfpb");
    let calc = calculator(&regime, WorkingCalendar::united_states(), chrono_tz::America::New_York);
    let response = period(&regime, "company_response");
    let final_response = period(&regime, "final_response");
    check(
        &calc,
        &[
            // Tue 2026-03-10 (EDT) + 15 = Wed 03-25; 24:00 EDT is 04:00 UTC next day.
            ("company response", response, "2026-03-10T10:00:00-04:00", "2026-03-26T04:00:00Z"),
            // Mon 2026-05-18 + 15 = Tue 06-02; Memorial Day (05-25) inside counts as a day.
            ("response across memorial day", response, "2026-05-18T10:00:00-04:00", "2026-06-03T04:00:00Z"),
            // Thu 2026-06-18 + 15 = Fri 07-03, Independence Day observed; the calculator runs it
            // past the weekend to Mon 07-06.
            ("response ends on independence day", response, "2026-06-18T10:00:00-04:00", "2026-07-07T04:00:00Z"),
            // Fri 2026-01-02 (EST) + 15 = Sat 01-17, the CFPB's last day; the calculator runs it
            // past the weekend and Martin Luther King, Jr. Day (Mon 19) to Tue 01-20, 24:00 EST.
            ("response ends on a saturday", response, "2026-01-02T10:00:00-05:00", "2026-01-21T05:00:00Z"),
            // Mon 2026-03-09 + 60 = Fri 05-08.
            ("final response", final_response, "2026-03-09T10:00:00-04:00", "2026-05-09T04:00:00Z"),
        ],
    );
    // Sun 2026-12-20 + 15 = Mon 2027-01-04: 2027 has no file, and this calculator does not
    // count years without one.
    assert_eq!(calc.due(at("2026-12-20T10:00:00-05:00"), response), Err(CalendarError::YearNotLoaded { year: 2027 }));
}

#[test]
fn a_regimes_own_calculator_counts_on_its_calendar_and_zone() {
    let received = at("2026-04-01T09:00:00+01:00");
    let fca = preset("fca-disp");
    let payments = period(&fca, "payment_services_final_response");
    assert_eq!(fca.calculator().due(received, payments), Ok(at("2026-04-24T23:00:00Z")));
    // A year without a file counts on the calendar's own provisional rules: 11 business days
    // to Thu 2026-12-31, New Year's Day (Fri), then Mon 4 to Thu 7 January 2027.
    let due = fca.calculator().due_explained(at("2026-12-14T10:00:00Z"), payments).unwrap();
    assert_eq!(due.at, at("2027-01-08T00:00:00Z"));
    let provisional = due.provisional.unwrap();
    assert_eq!(provisional.year, 2027);
    assert!(provisional.reason.contains("gb-eng") && provisional.reason.contains("2027"), "{}", provisional.reason);
    let cbirc = preset("cbirc");
    let decision = period(&cbirc, "regulatory_decision");
    assert!(cbirc.calculator().calendar().is_provisional(2027));
    assert!(cbirc.calculator().due(at("2026-12-20T10:00:00+08:00"), decision).is_ok());
}
