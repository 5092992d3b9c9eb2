//! How a pair's `impact` is said to people: the clients' names and one phrase per outcome.
//! One place, because three say it: the fix hint's lead (judge), the table of `check` and
//! the dashboard's details pane.

use super::{Impact, ImpactClient, ImpactOutcome, Verdict};

impl ImpactClient {
    /// The name people know the client by.
    pub fn name(self) -> &'static str {
        match self {
            ImpactClient::Chrome => "Chrome",
            ImpactClient::Firefox => "Firefox",
            ImpactClient::Safari => "Safari",
            ImpactClient::SafariBefore15_1 => "Safari < 15.1",
            ImpactClient::NonPooling => "non-pooling clients",
        }
    }
}

impl ImpactOutcome {
    /// What the users get, as a noun: "error page for Safari < 15.1".
    fn noun(self) -> &'static str {
        match self {
            ImpactOutcome::ShowsError => "error page",
            ImpactOutcome::WrongContent => "wrong page",
            ImpactOutcome::RetriesOverHttp1 => "retry over HTTP/1.1",
            ImpactOutcome::RetriesOnNewConnection => "retry on a new connection",
            ImpactOutcome::Unaffected => "unaffected",
        }
    }

    /// What the users get, as a verb: "Safari < 15.1 users see an error page".
    fn verb(self) -> &'static str {
        match self {
            ImpactOutcome::ShowsError => "see an error page",
            ImpactOutcome::WrongContent => "see the wrong page",
            ImpactOutcome::RetriesOverHttp1 => "fall back to HTTP/1.1 (a new connection)",
            ImpactOutcome::RetriesOnNewConnection => {
                "pay a retry on a new connection (a handshake and a round trip)"
            }
            ImpactOutcome::Unaffected => "are unaffected",
        }
    }
}

/// The clients of `impact` whose outcome is `outcome`, in the order listed. Safari of every
/// version is just "Safari" when the old and the new versions fare alike.
fn clients_with(impact: &[Impact], outcome: ImpactOutcome) -> Vec<&'static str> {
    let clients: Vec<ImpactClient> = impact
        .iter()
        .filter(|i| i.outcome == outcome)
        .map(|i| i.client)
        .collect();
    let both_safaris =
        clients.contains(&ImpactClient::Safari) && clients.contains(&ImpactClient::SafariBefore15_1);
    clients
        .into_iter()
        .filter(|c| !(both_safaris && *c == ImpactClient::SafariBefore15_1))
        .map(ImpactClient::name)
        .collect()
}

/// The outcomes someone notices, worst first, each with its clients.
fn noticed(impact: &[Impact]) -> Vec<(ImpactOutcome, Vec<&'static str>)> {
    ImpactOutcome::ALL
        .iter()
        .filter(|o| **o != ImpactOutcome::Unaffected)
        .map(|o| (*o, clients_with(impact, *o)))
        .filter(|(_, clients)| !clients.is_empty())
        .collect()
}

/// Said after the outcomes of an intermittent pair: they happen on part of the requests.
fn some_requests(verdict: Verdict) -> &'static str {
    if verdict == Verdict::Intermittent {
        " (on some requests)"
    } else {
        ""
    }
}

/// One line: "error page for Safari < 15.1 · retry on a new connection for Chrome, Firefox,
/// Safari", the clients grouped by outcome, worst first; None when no one notices anything.
pub fn summary(impact: &[Impact], verdict: Verdict) -> Option<String> {
    let groups: Vec<String> = noticed(impact)
        .into_iter()
        .map(|(o, clients)| format!("{} for {}", o.noun(), clients.join(", ")))
        .collect();
    if groups.is_empty() {
        return None;
    }
    Some(format!("{}{}", groups.join(" · "), some_requests(verdict)))
}

/// Who is hurt most, as a clause to lead a fix hint with: "Safari < 15.1 users see an error
/// page"; None when no one notices anything.
pub fn lead(impact: &[Impact], verdict: Verdict) -> Option<String> {
    let (outcome, clients) = noticed(impact).into_iter().next()?;
    let who = match clients.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => return None,
    };
    Some(format!(
        "{who} users {}{}",
        outcome.verb(),
        some_requests(verdict)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImpactClient::*;
    use ImpactOutcome::*;

    fn i(client: ImpactClient, coalesces: bool, outcome: ImpactOutcome) -> Impact {
        Impact {
            client,
            coalesces,
            outcome,
        }
    }

    fn misdirected() -> Vec<Impact> {
        vec![
            i(SafariBefore15_1, true, ShowsError),
            i(Chrome, true, RetriesOnNewConnection),
            i(Firefox, true, RetriesOnNewConnection),
            i(Safari, true, RetriesOnNewConnection),
            i(NonPooling, false, Unaffected),
        ]
    }

    #[test]
    fn the_summary_groups_clients_by_outcome_worst_first() {
        assert_eq!(
            summary(&misdirected(), Verdict::Misdirected).as_deref(),
            Some("error page for Safari < 15.1 · retry on a new connection for Chrome, Firefox, Safari")
        );
        assert_eq!(
            summary(&misdirected(), Verdict::Intermittent).as_deref(),
            Some("error page for Safari < 15.1 · retry on a new connection for Chrome, Firefox, Safari (on some requests)")
        );
        let ok = [i(Chrome, true, Unaffected), i(NonPooling, false, Unaffected)];
        assert_eq!(summary(&ok, Verdict::Ok), None);
        assert_eq!(summary(&[], Verdict::Pending), None);
    }

    #[test]
    fn the_lead_names_who_is_hurt_most() {
        assert_eq!(
            lead(&misdirected(), Verdict::Misdirected).as_deref(),
            Some("Safari < 15.1 users see an error page")
        );
        let wrong = [
            i(Chrome, true, WrongContent),
            i(Firefox, true, WrongContent),
            i(Safari, true, WrongContent),
            i(SafariBefore15_1, true, WrongContent),
            i(NonPooling, false, Unaffected),
        ];
        assert_eq!(
            lead(&wrong, Verdict::Misrouted).as_deref(),
            Some("Chrome, Firefox and Safari users see the wrong page")
        );
        assert_eq!(lead(&[i(NonPooling, false, Unaffected)], Verdict::Ok), None);
    }
}
