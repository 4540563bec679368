//! Printing a plan: text for a terminal, Markdown for a pull-request comment, JSON for tools.

use std::fmt::Write;

use super::{Decision, Plan};

/// How `plan` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for a terminal.
    #[default]
    Text,
    /// A pull-request comment.
    Markdown,
    /// JSON.
    Json,
}

/// The plan in `format`.
pub fn render(plan: &Plan, format: Format) -> Result<String, std::fmt::Error> {
    match format {
        Format::Text => Ok(text(plan)),
        Format::Markdown => Ok(markdown(plan)),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(plan).map_err(|_| std::fmt::Error)?;
            json.push('\n');
            Ok(json)
        }
    }
}

/// `2 to create, 1 to update, 1 error`.
fn summary(plan: &Plan) -> String {
    let order = [
        (Decision::Create, "to create"),
        (Decision::Adopt, "to adopt"),
        (Decision::Update, "to update"),
        (Decision::Reissue, "to reissue"),
        (Decision::Rotate, "to rotate"),
        (Decision::Revoke, "to revoke"),
        (Decision::Release, "to release"),
        (Decision::Observe, "observed"),
        (Decision::Suspended, "suspended"),
        (Decision::Nothing, "unchanged"),
        (Decision::Error, "with errors"),
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|(action, words)| {
            let count = plan
                .authorizations
                .iter()
                .filter(|a| a.action == *action)
                .count();
            (count > 0).then(|| format!("{count} {words}"))
        })
        .collect();
    let prune: usize = plan.accounts.iter().map(|a| a.new_deletions.len()).sum();
    let deleted = plan
        .accounts
        .iter()
        .filter(|a| a.deletion.is_some())
        .count();
    let mut line = format!(
        "Authorizations: {}.",
        if parts.is_empty() {
            "none affected".to_owned()
        } else {
            parts.join(", ")
        }
    );
    if prune > 0 {
        let _ = write!(line, " Pruning: {prune} newly undeclared.");
    }
    if deleted > 0 {
        let _ = write!(line, " Accounts: {deleted} to delete.");
    }
    line
}

fn cost(plan: &Plan) -> String {
    format!(
        "GHES writes once applied: {} ({} create, {} update, {} delete); this plan made {} GHES \
         call{}, all GETs.",
        plan.writes.total(),
        plan.writes.create,
        plan.writes.update,
        plan.writes.delete,
        plan.ghes_reads,
        if plan.ghes_reads == 1 { "" } else { "s" }
    )
}

fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary(plan));
    if !plan.authorizations.is_empty() {
        let width = plan
            .authorizations
            .iter()
            .map(|a| a.namespace.len() + a.name.len() + 1)
            .max()
            .unwrap_or(0);
        let _ = writeln!(out);
        for a in &plan.authorizations {
            let _ = writeln!(
                out,
                "  {:<8} {:<width$}  {}",
                a.action.as_str(),
                format!("{}/{}", a.namespace, a.name),
                a.detail,
            );
        }
    }
    for account in &plan.accounts {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}:", heading(account));
        account_lines(account, &mut out, "  ");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", cost(plan));
    out
}

fn identity(account: &super::AccountPlan) -> &str {
    if account.identity.is_empty() {
        "identity unknown"
    } else {
        &account.identity
    }
}

/// `Account ns/bot (user at server), prune Enabled`, or `Account ns/bot, deleted`.
fn heading(account: &super::AccountPlan) -> String {
    match account.deletion {
        Some(_) => format!("{}, deleted", account.account),
        None => format!(
            "{} ({}), prune {}",
            account.account,
            identity(account),
            account.mode
        ),
    }
}

fn account_lines(account: &super::AccountPlan, out: &mut String, indent: &str) {
    if let Some(deletion) = &account.deletion {
        let _ = writeln!(out, "{indent}{deletion}");
        return;
    }
    if let Some(error) = &account.error {
        let _ = writeln!(out, "{indent}error: {error}");
        return;
    }
    if account.mode == "Disabled" {
        let _ = writeln!(out, "{indent}pruning is disabled");
        return;
    }
    if let Some(refused) = &account.refused {
        let _ = writeln!(out, "{indent}refused: {refused}");
    }
    let verb = if account.mode == "Enabled" {
        "delete"
    } else {
        "candidate (DryRun: not deleted)"
    };
    for candidate in &account.candidates {
        let new = if account.new_deletions.contains(candidate) {
            " [new with this change]"
        } else {
            ""
        };
        let _ = writeln!(out, "{indent}{verb}: {candidate}{new}");
    }
    for kept in &account.kept {
        let _ = writeln!(out, "{indent}keep: {kept}");
    }
    if account.foreign > 0 {
        let _ = writeln!(
            out,
            "{indent}left alone: {} token(s) of another installation of the operator",
            account.foreign
        );
    }
    if account.candidates.is_empty() && account.kept.is_empty() && account.refused.is_none() {
        let _ = writeln!(out, "{indent}nothing to prune");
    }
}

/// Markdown table cells must not break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let icon = if plan.has_errors() {
        "❌"
    } else if plan.has_changes() {
        "📝"
    } else {
        "✅"
    };
    let _ = writeln!(out, "### {icon} ghes-oauth-operator plan\n");
    let _ = writeln!(out, "{}\n", summary(plan));
    if !plan.authorizations.is_empty() {
        let _ = writeln!(out, "| Action | Authorization | Account | Detail |");
        let _ = writeln!(out, "|---|---|---|---|");
        for a in &plan.authorizations {
            let _ = writeln!(
                out,
                "| **{}** | `{}/{}` | {} | {} |",
                a.action.as_str(),
                a.namespace,
                a.name,
                cell(&a.account),
                cell(&a.detail)
            );
        }
        let _ = writeln!(out);
    }
    if !plan.accounts.is_empty() {
        let _ = writeln!(out, "<details><summary>Accounts</summary>\n");
        for account in &plan.accounts {
            let _ = writeln!(out, "**{}**:\n", cell(&heading(account)));
            let mut lines = String::new();
            account_lines(account, &mut lines, "- ");
            let _ = writeln!(out, "{lines}");
        }
        let _ = writeln!(out, "</details>\n");
    }
    let _ = writeln!(out, "{}", cost(plan));
    out
}
