//! Public opinion (D-ESC-3): mentions from a monitoring system are matched against the
//! institution's watchlists; a match raises a keyword alert, enough matches within a window a
//! volume alert, and a far-reaching mention (or a volume alert) opens or joins the watchlist's
//! media incident.

use chrono::{DateTime, Utc};
use redress_platform::time::to_timestamp;
use redress_proto::redress::escalation::v1::{Alert, AlertKind, Mention, Watchlist};

/// The terms of `watchlist` that `mention` matches: at least one keyword and, when the
/// watchlist names entities, at least one entity. `None` when it does not match.
pub fn matched_terms(watchlist: &Watchlist, text: &str) -> Option<Vec<String>> {
    let text = text.to_lowercase();
    let found = |terms: &[String]| -> Vec<String> {
        terms.iter().filter(|t| !t.trim().is_empty() && text.contains(&t.trim().to_lowercase())).cloned().collect()
    };
    let keywords = found(&watchlist.keywords);
    if keywords.is_empty() {
        return None;
    }
    let entities = found(&watchlist.entities);
    if !watchlist.entities.is_empty() && entities.is_empty() {
        return None;
    }
    Some(keywords.into_iter().chain(entities).collect())
}

/// Which volume window a publish time falls in: at most one volume alert per window.
pub fn volume_window(publish: DateTime<Utc>, minutes: i32) -> i64 {
    let span = i64::from(minutes.max(1)) * 60;
    publish.timestamp().div_euclid(span)
}

/// Whether a matching mention is far-reaching enough to open or join the watchlist's incident.
pub fn reaches_incident(watchlist: &Watchlist, mention: &Mention) -> bool {
    watchlist.incident_reach > 0 && mention.reach >= watchlist.incident_reach
}

/// Whether `count` matching mentions in the window reach the watchlist's volume threshold.
pub fn reaches_volume(watchlist: &Watchlist, count: i64) -> bool {
    watchlist.volume_threshold > 0 && count >= i64::from(watchlist.volume_threshold)
}

fn recipients(watchlist: &Watchlist) -> Vec<String> {
    vec![format!("org_unit:{}", watchlist.org_unit), "department:public_relations".to_owned()]
}

/// The alert of a mention matching a watchlist's keywords.
pub fn keyword_alert(
    name: String,
    watchlist: &Watchlist,
    mention: &Mention,
    terms: &[String],
    now: DateTime<Utc>,
) -> Alert {
    Alert {
        name,
        kind: AlertKind::MentionKeyword as i32,
        org_unit: watchlist.org_unit.clone(),
        recipients: recipients(watchlist),
        reason: format!("{}：{} 出现关注词（传播量 {}）", watchlist.display_name, mention.source, mention.reach),
        evidence: terms.to_vec(),
        mention: mention.name.clone(),
        create_time: Some(to_timestamp(now)),
        ..Alert::default()
    }
}

/// The alert of a watchlist's mentions reaching its volume threshold.
pub fn volume_alert(name: String, watchlist: &Watchlist, mention: &Mention, count: i64, now: DateTime<Utc>) -> Alert {
    Alert {
        name,
        kind: AlertKind::MentionVolume as i32,
        org_unit: watchlist.org_unit.clone(),
        recipients: recipients(watchlist),
        reason: format!(
            "{}：{} 分钟内相关舆情 {} 条，达到预警阈值 {}",
            watchlist.display_name, watchlist.volume_window_minutes, count, watchlist.volume_threshold
        ),
        evidence: vec![format!("count={count}")],
        mention: mention.name.clone(),
        create_time: Some(to_timestamp(now)),
        ..Alert::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn watchlist() -> Watchlist {
        Watchlist {
            org_unit: "institutions/demo".into(),
            display_name: "理财舆情".into(),
            keywords: vec!["爆雷".into(), "维权".into()],
            entities: vec!["示例银行".into()],
            volume_threshold: 3,
            volume_window_minutes: 60,
            incident_reach: 100_000,
            ..Watchlist::default()
        }
    }

    #[test]
    fn a_mention_matches_a_keyword_and_an_entity() {
        let w = watchlist();
        assert_eq!(matched_terms(&w, "示例银行理财爆雷，大家一起维权").unwrap(), ["爆雷", "维权", "示例银行"]);
        assert!(matched_terms(&w, "某银行理财爆雷").is_none(), "no entity");
        assert!(matched_terms(&w, "示例银行服务很好").is_none(), "no keyword");
        let open = Watchlist { entities: vec![], ..w.clone() };
        assert!(matched_terms(&open, "理财爆雷").is_some());
    }

    #[test]
    fn reach_and_volume_thresholds() {
        let w = watchlist();
        let m = |reach| Mention { reach, ..Mention::default() };
        assert!(reaches_incident(&w, &m(150_000)) && !reaches_incident(&w, &m(10)));
        assert!(reaches_volume(&w, 3) && !reaches_volume(&w, 2));
        let t = DateTime::from_timestamp(3600 * 10 + 5, 0).unwrap();
        assert_eq!(volume_window(t, 60), 10);
    }
}
