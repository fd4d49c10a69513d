//! Who may approve: the label override (who added `overrides.label`, verified through
//! [`LabelApprovals`]) and the exceptions file's `approver` entries, both checked against
//! `overrides.approvers` by the one matcher here.
//!
//! Owns: matching a login against `overrides.approvers` (users and `org/team`). Must not touch: the
//! verdict (it receives the results), GitHub's API (behind the trait).

use crate::gates::exceptions::Exception;
use crate::gates::run::{GateContext, LabelApprovals};
use crate::policy::model::Policy;
use crate::verdict::LabelApproval;

/// The label override on the PR, if its adder is an approver; problems are noted.
pub async fn label_approval<L: LabelApprovals>(
    policy: &Policy,
    ctx: &GateContext,
    labels: &L,
    notes: &mut Vec<String>,
) -> Option<LabelApproval> {
    let pr = ctx.pull_request.as_ref()?;
    let ov = policy.overrides.as_ref()?;
    let label = ov.label.as_ref()?;
    let user = match labels.label_added_by(pr.number, label).await {
        Ok(u) => u?,
        Err(e) => {
            notes.push(format!("failed to {e}; label `{label}` not applied"));
            return None;
        }
    };
    if let Some(approver) = matching_approver(labels, &user, &ov.approvers, notes).await {
        return Some(LabelApproval {
            label: label.clone(),
            pr: pr.number,
            user,
            approver,
        });
    }
    notes.push(format!(
        "label `{label}` was added by {user}, who is not among the approvers; not applied"
    ));
    None
}

/// The `overrides.approvers` entry `user` matches: a user entry (`alice`, `@alice`), or a team
/// (`org/team`) they are an active member of. A failed team lookup is noted and does not match.
async fn matching_approver<L: LabelApprovals>(
    labels: &L,
    user: &str,
    approvers: &[String],
    notes: &mut Vec<String>,
) -> Option<String> {
    let user = user.trim_start_matches('@');
    for approver in approvers {
        let ok = if approver.contains('/') {
            match labels.is_team_member(user, approver).await {
                Ok(b) => b,
                Err(e) => {
                    notes.push(format!("failed to {e} (team {approver})"));
                    false
                }
            }
        } else {
            approver.trim_start_matches('@').eq_ignore_ascii_case(user)
        };
        if ok {
            return Some(approver.clone());
        }
    }
    None
}

/// The exceptions whose `approver` is among `overrides.approvers`; each other one is noted as not
/// applied (free text in a file is not an approval).
pub async fn approved_exceptions<L: LabelApprovals>(
    policy: &Policy,
    exceptions: Vec<Exception>,
    labels: &L,
    notes: &mut Vec<String>,
) -> Vec<Exception> {
    let approvers: &[String] = policy
        .overrides
        .as_ref()
        .map_or(&[], |o| o.approvers.as_slice());
    let mut verdicts: std::collections::BTreeMap<String, bool> = Default::default();
    let mut kept = Vec::new();
    for e in exceptions {
        let ok = match verdicts.get(&e.approver) {
            Some(ok) => *ok,
            None => {
                let ok = matching_approver(labels, &e.approver, approvers, notes)
                    .await
                    .is_some();
                verdicts.insert(e.approver.clone(), ok);
                ok
            }
        };
        if ok {
            kept.push(e);
        } else {
            notes.push(format!(
                "exception `{}` names approver `{}`, who is not among `overrides.approvers`; not applied",
                e.fingerprint, e.approver
            ));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::run::ApprovalError;
    use chrono::NaiveDate;

    /// `sec` belongs to `org/security`; nobody else to anything.
    struct Teams;

    impl LabelApprovals for Teams {
        async fn label_added_by(
            &self,
            _pr: u64,
            _label: &str,
        ) -> Result<Option<String>, ApprovalError> {
            Ok(None)
        }
        async fn is_team_member(&self, user: &str, team: &str) -> Result<bool, ApprovalError> {
            Ok(user == "sec" && team == "org/security")
        }
    }

    fn exception(fp: &str, approver: &str) -> Exception {
        Exception {
            fingerprint: fp.into(),
            reason: "r".into(),
            approver: approver.into(),
            expires: NaiveDate::from_ymd_opt(2099, 1, 1).unwrap_or_default(),
        }
    }

    /// An exception applies only when its approver is a listed user or a member of a listed team;
    /// every other one is noted as not applied.
    #[tokio::test]
    async fn exceptions_need_a_listed_approver() {
        let mut policy = crate::policy::load_str(
            "version: 1\napp: {name: a, image: x/a}\nbranches:\n  main: {tier: t}\ntiers:\n  t: [g]\ngates:\n  g: {run: [\"true\"], parser: exit-code}\noverrides:\n  approvers: ['@alice', org/security]\n",
            std::path::Path::new("p.yml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut notes = Vec::new();
        let kept = approved_exceptions(
            &policy,
            vec![
                exception("1", "Alice"),
                exception("2", "sec"),
                exception("3", "mallory"),
            ],
            &Teams,
            &mut notes,
        )
        .await;
        let fps: Vec<&str> = kept.iter().map(|e| e.fingerprint.as_str()).collect();
        assert_eq!(fps, ["1", "2"]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("`mallory`"), "{notes:?}");
        policy.overrides = None;
        let kept =
            approved_exceptions(&policy, vec![exception("1", "alice")], &Teams, &mut notes).await;
        assert!(kept.is_empty(), "no approvers: nothing applies");
    }
}
