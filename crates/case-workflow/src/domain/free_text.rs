//! Personal information in the free text handlers write on a case (D-PII-5): notes, reasons,
//! contact summaries, grounds, decision notices, survey comments, task and step descriptions
//! and outcomes. Case-workflow holds no complainant's key to seal clear text with, so the
//! identifiers written into them (ID, phone and card numbers, e-mail addresses) are masked
//! before anything is kept: the case, its events and its audit entries only ever hold the
//! masked words, and nothing of them outlives the complainant's erasure at intake.

use redress_platform::free_text_pii::mask_in_place;

use super::workflow::Command;

/// `command` with the identifiers in its free text masked.
pub fn masked(mut command: Command) -> Command {
    mask(&mut command);
    command
}

/// Masks the identifiers in every free-text field of `command`.
pub fn mask(command: &mut Command) {
    let texts: Vec<&mut String> = match command {
        Command::Transfer { reason, .. }
        | Command::Transition { reason, .. }
        | Command::ChangeGrade { reason, .. }
        | Command::Extend { reason, .. }
        | Command::Link { reason, .. }
        | Command::RequestReview { reason }
        | Command::SetProblemScope { reason, .. }
        | Command::Reclassify { reason, .. } => vec![reason],
        Command::FirstResponse { note, .. }
        | Command::Pause { note, .. }
        | Command::Resume { note }
        | Command::Approve { note }
        | Command::ConfirmNoConflict { note } => vec![note],
        Command::Propose { grounds, .. } => vec![grounds],
        Command::Decide { notice } | Command::DecideReview { notice, .. } => vec![notice],
        Command::Survey { comment, .. } => vec![comment],
        Command::AddEvidence { description, .. } => vec![description],
        Command::AddTask { description, .. } => vec![description],
        Command::CompleteTask { outcome, .. } | Command::CompleteImplementationStep { outcome, .. } => vec![outcome],
        Command::RecordContact(contact) => vec![&mut contact.summary],
        Command::AddImplementationStep(step) => vec![&mut step.description],
        Command::Assign { .. } => Vec::new(),
        // Commands no caller writes text into (the reply lint's wraps a command masked
        // before it was linted).
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    };
    for text in texts {
        mask_in_place(text);
    }
}

#[cfg(test)]
mod tests {
    use redress_proto::redress::case::v1::ReviewOutcome;

    use super::*;

    #[test]
    fn identifiers_in_a_commands_text_are_masked_and_the_rest_stays() {
        let decided = masked(Command::Decide {
            notice: "退还 300.00 元至卡 6222020200112233446，2026-12-03 前到账".into(),
        });
        let Command::Decide { notice } = decided else { panic!("still a decision") };
        assert_eq!(notice, "退还 300.00 元至卡 6222***********3446，2026-12-03 前到账");
        let review = masked(Command::DecideReview {
            outcome: ReviewOutcome::Upheld,
            notice: "已电话 13812345678 告知投诉编号 2026120300000042 的结果".into(),
        });
        let Command::DecideReview { notice, .. } = review else { panic!("still a review") };
        assert_eq!(notice, "已电话 138****5678 告知投诉编号 2026120300000042 的结果");
    }
}
