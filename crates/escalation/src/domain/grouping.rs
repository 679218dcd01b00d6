//! Group-complaint detection (D-ESC-2): complaints of one institution within a window are
//! compared by what their facts and demand say. Each text becomes a set of jieba tokens (the
//! words that carry the matter, not the words every complaint uses), then a MinHash
//! signature; locality-sensitive hashing over bands of the signature gives the few earlier
//! complaints worth comparing (so matching stays sub-linear in the window), and those are
//! scored by the exact Jaccard similarity of their token sets, with business type and cause
//! when both are known. A complaint joins the cluster of what it matches; a cluster of enough
//! distinct complainants is proposed as an incident, and a larger one (or a burst) declared.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// Words that say nothing about which matter a complaint is about: pronouns, particles, and
/// what every complaint says (asking, complaining, the bank, hoping, quickly, …).
const STOPWORDS: &[&str] = &[
    "的",
    "了",
    "我",
    "是",
    "在",
    "和",
    "就",
    "也",
    "都",
    "还",
    "说",
    "你们",
    "我们",
    "他们",
    "她",
    "他",
    "这",
    "那",
    "有",
    "被",
    "给",
    "让",
    "把",
    "要",
    "没",
    "不",
    "又",
    "很",
    "吗",
    "呢",
    "吧",
    "啊",
    "着",
    "过",
    "对",
    "与",
    "及",
    "或",
    "后",
    "时",
    "再",
    "才",
    "并",
    "从",
    "到",
    "为",
    "但",
    "而",
    "一个",
    "什么",
    "这个",
    "那个",
    "这样",
    "这种",
    "客户",
    "贵行",
    "我行",
    "银行",
    "你们银行",
    "反映",
    "其",
    "该",
    "要求",
    "希望",
    "请",
    "尽快",
    "投诉",
    "问题",
    "处理",
    "解决",
    "情况",
    "一直",
    "已经",
    "没有",
    "现在",
    "之前",
    "当时",
    "根本",
    "结果",
    "可是",
    "但是",
    "而且",
    "所以",
    "因为",
    "如果",
    "只能",
    "只",
    "一下",
    "一点",
    "一次",
    "几次",
    "多次",
    "非常",
    "实在",
    "真的",
    "就是",
    "可以",
    "能",
    "不能",
    "不会",
    "会",
    "需要",
    "必须",
    "应该",
    "自己",
    "本人",
    "人",
    "事",
    "事情",
    "时候",
    "一些",
    "很多",
    "好几",
    "任何",
    "所有",
    "全部",
    "出现",
    "发现",
    "告诉",
    "告知",
    "表示",
    "说明",
    "解释",
    "答复",
    "回复",
    "联系",
    "电话",
    "客服",
    "工作人员",
    "工作",
    "人员",
    "网点",
    "办理",
    "业务",
    "相关",
    "方面",
    "以后",
    "以前",
    "目前",
    "最近",
    "今天",
    "昨天",
    "上午",
    "下午",
    "晚上",
    "月",
    "年",
    "天",
    "日",
    "元",
    "块",
    "钱",
    "万",
    "多",
    "不到",
    "不了",
    "得到",
    "看到",
    "收到",
    "知道",
    "觉得",
    "感觉",
    "认为",
    "里",
    "上",
    "下",
    "中",
    "去",
    "来",
    "做",
    "用",
    "看",
    "问",
    "等",
    "跑",
    "下文",
    "答复",
    "说法",
    "依据",
    "原因",
    "合理",
    "不合理",
    "失望",
    "消费者",
    "权益",
    "考虑",
    "角度",
    "老客户",
    "态度",
    "客气",
    "方便",
    "不便",
    "实在",
    "生活",
    "影响",
    "麻烦",
    "时间",
    "明确",
    "核实",
    "调查",
    "给出",
    "保留",
    "截图",
    "监管部门",
    "部门",
    "重视",
    "十多",
    "十多年",
    "多年",
    "老客",
    "一个多",
    "星期",
    "这件",
    "两次",
    "有人",
    "都说会",
    "年纪",
    "来回",
    "消费",
    "考虑一下",
    "得不到",
    "监管",
    "监管部",
    "作人",
    "决不",
    "解决不了",
    "上班",
    "上班时间",
    "办法",
    "打电话",
    "不要",
    "不合",
    "带来",
    "清楚",
    "经办",
    "说不清",
    "说不清楚",
    "回事",
    "当成",
    "耽误",
    "依规",
    "改进",
    "有关",
    "下文",
    "答应",
    "承诺",
    "负责",
    "一定",
    "马上",
    "立即",
    "赶紧",
    "为什么",
    "怎么",
    "怎么办",
    "怎么回事",
    "不行",
    "不可能",
    "麻烦",
    "谢谢",
    "第一次",
    "遇到",
    "无奈",
    "普通人",
    "不可思议",
    "家里人",
    "随意",
    "做法",
    "这么",
    "那么",
    "还是",
    "而是",
];

/// The tokens of a complaint's own words that carry its matter: jieba's search-mode words,
/// lower-cased, without punctuation, numbers, single characters and stopwords; sorted and
/// unique.
pub fn tokens(text: &str) -> Vec<String> {
    static STOP: LazyLock<HashSet<&'static str>> = LazyLock::new(|| STOPWORDS.iter().copied().collect());
    let text = without_amounts(text);
    let set: BTreeSet<String> = redress_platform::segmenter::segmenter()
        .cut(&text, true)
        .into_iter()
        .map(|t| t.word.trim().to_lowercase())
        .filter(|t| t.chars().count() > 1)
        .filter(|t| t.chars().all(|c| c.is_alphabetic()))
        .filter(|t| !STOP.contains(t.as_str()))
        .collect();
    set.into_iter().collect()
}

/// The text with numbers, and the unit of money or count right after one, blanked out: they
/// differ from person to person, and "480元年费" would otherwise cut as "元年" + "费".
fn without_amounts(text: &str) -> String {
    const UNITS: &[char] = &['元', '万', '块', '千', '百', '笔', '次', '个', '天', '月', '年', '号', '%'];
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        let blank = if c.is_ascii_digit() || (in_number && matches!(c, '.' | ',')) {
            in_number = true;
            true
        } else {
            // One unit right after the number goes with it.
            let unit = in_number && UNITS.contains(&c);
            in_number = false;
            unit
        };
        out.push(if blank { ' ' } else { c });
    }
    out
}

/// How many hash functions the MinHash signature has.
pub const SIGNATURE_LEN: usize = 96;

/// The matching parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchParams {
    /// LSH bands (each of `SIGNATURE_LEN / bands` rows).
    pub bands: usize,
    /// Lowest similarity (0..1) at which a complaint joins what it matches.
    pub threshold: f64,
    /// Added to the similarity when both complaints have the same business type and cause.
    pub same_class_bonus: f64,
    /// Taken off when both business types are known and differ.
    pub other_class_penalty: f64,
    /// Fewest terms two complaints must share to match (short texts alike by a word or two
    /// are not).
    pub min_shared_terms: usize,
}

impl Default for MatchParams {
    fn default() -> Self {
        Self { bands: 32, threshold: 0.3, same_class_bonus: 0.05, other_class_penalty: 0.1, min_shared_terms: 3 }
    }
}

impl MatchParams {
    pub fn rows(&self) -> usize {
        SIGNATURE_LEN / self.bands.max(1)
    }

    /// The method and its parameters, as evidence records them.
    pub fn method(&self) -> String {
        format!("minhash-lsh jieba {SIGNATURE_LEN}/{}x{} jaccard>={:.2}", self.bands, self.rows(), self.threshold)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.bands > 0 && SIGNATURE_LEN.is_multiple_of(self.bands),
            "grouping.matching.bands must divide {SIGNATURE_LEN}"
        );
        anyhow::ensure!((0.0..=1.0).contains(&self.threshold), "grouping.matching.threshold must lie in 0..1");
        Ok(())
    }
}

/// A stable 64-bit hash (FNV-1a), the same in every process and release.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64: spreads a seed and a value over 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The MinHash signature of a token set: for each of [`SIGNATURE_LEN`] hash functions, the
/// least hash of any token (empty sets sign with all `u32::MAX`).
pub fn signature(tokens: &[String]) -> Vec<u32> {
    let hashes: Vec<u64> = tokens.iter().map(|t| fnv(t.as_bytes())).collect();
    (0..SIGNATURE_LEN as u64)
        .map(|i| {
            let seed = mix(i.wrapping_mul(0x5851_f42d_4c95_7f2d));
            hashes.iter().map(|h| (mix(h ^ seed) >> 32) as u32).min().unwrap_or(u32::MAX)
        })
        .collect()
}

/// The LSH bucket keys of a signature: one per band, the band's index and rows hashed.
pub fn buckets(signature: &[u32], params: &MatchParams) -> Vec<i64> {
    let rows = params.rows();
    signature
        .chunks(rows)
        .enumerate()
        .filter(|(_, band)| band.iter().any(|v| *v != u32::MAX))
        .map(|(i, band)| {
            let mut bytes = Vec::with_capacity(8 + rows * 4);
            bytes.extend_from_slice(&(i as u64).to_le_bytes());
            for v in band {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            fnv(&bytes) as i64
        })
        .collect()
}

/// What a complaint is compared by.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub tokens: Vec<String>,
    pub buckets: Vec<i64>,
    pub business_type: String,
    pub cause: String,
}

/// The fingerprint of a complaint's facts and demand, with its classification codes.
pub fn fingerprint(facts: &str, demand: &str, business_type: &str, cause: &str, params: &MatchParams) -> Fingerprint {
    let tokens = tokens(&format!("{facts}\n{demand}"));
    let buckets = buckets(&signature(&tokens), params);
    Fingerprint { tokens, buckets, business_type: business_type.to_owned(), cause: cause.to_owned() }
}

/// How alike two complaints are (Jaccard of their tokens, adjusted by their classification),
/// and the terms they share.
pub fn similarity(a: &Fingerprint, b: &Fingerprint, params: &MatchParams) -> (f64, Vec<String>) {
    let (mut i, mut j) = (0, 0);
    let mut shared = Vec::new();
    while i < a.tokens.len() && j < b.tokens.len() {
        match a.tokens[i].cmp(&b.tokens[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared.push(a.tokens[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.tokens.len() + b.tokens.len() - shared.len();
    if union == 0 {
        return (0.0, shared);
    }
    let mut score = shared.len() as f64 / union as f64;
    let known = |s: &str| !s.is_empty();
    if known(&a.business_type) && known(&b.business_type) {
        if a.business_type == b.business_type && a.cause == b.cause {
            score += params.same_class_bonus;
        } else if a.business_type != b.business_type {
            score -= params.other_class_penalty;
        }
    }
    (score.clamp(0.0, 1.0), shared)
}

/// Whether two complaints match: alike enough, on enough terms.
pub fn matches(score: f64, shared: &[String], params: &MatchParams) -> bool {
    score >= params.threshold && shared.len() >= params.min_shared_terms
}

/// The terms most members of a cluster share, most common first.
pub fn shared_terms<'a>(members: impl IntoIterator<Item = &'a [String]>, top: usize) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut n = 0;
    for tokens in members {
        n += 1;
        for t in tokens {
            *counts.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().filter(|(_, c)| *c * 3 >= n.max(1)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.into_iter().take(top).map(|(t, _)| t.to_owned()).collect()
}

/// The longest `window_days + late_days` may be: a century.
pub const MAX_KEPT_DAYS: u64 = 36_525;

/// When similar complaints become an incident (D-ESC-2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupingConfig {
    /// Complaints are compared with those received this many days before or after.
    pub window_days: u32,
    /// How many days after its receive time a complaint may reach matching and still be
    /// compared with everything in its window. What was received more than `window_days +
    /// late_days` days ago is no longer a candidate: its bands are forgotten by retention (its
    /// fingerprint, group and evidence are kept), so the store the matcher searches holds
    /// that many days of complaints however many are stored.
    pub late_days: u32,
    /// Distinct complainants at which a cluster is proposed as an incident.
    pub propose_at: u32,
    /// Distinct complainants at which it is declared without waiting for a decision.
    pub declare_at: u32,
    /// Distinct complainants within `burst_hours` that declare it as a burst.
    pub burst_count: u32,
    pub burst_hours: u32,
    pub matching: MatchParams,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        Self {
            window_days: 14,
            late_days: 30,
            propose_at: 5,
            declare_at: 20,
            burst_count: 10,
            burst_hours: 6,
            matching: MatchParams::default(),
        }
    }
}

impl GroupingConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.window_days > 0, "grouping.window_days: at least 1");
        anyhow::ensure!(
            u64::from(self.window_days) + u64::from(self.late_days) <= MAX_KEPT_DAYS,
            "grouping.window_days + grouping.late_days: at most {MAX_KEPT_DAYS} (a century)"
        );
        anyhow::ensure!(self.propose_at >= 2, "grouping.propose_at: at least 2");
        anyhow::ensure!(self.declare_at >= self.propose_at, "grouping.declare_at: at least propose_at");
        anyhow::ensure!(self.burst_count >= 2 && self.burst_hours > 0, "grouping.burst_*: at least 2 in 1 hour");
        self.matching.validate()
    }

    pub fn window(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.window_days))
    }

    pub fn burst_window(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.burst_hours))
    }

    /// How long a complaint stays a candidate after its receive time.
    pub fn kept(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.window_days) + i64::from(self.late_days))
    }

    /// The earliest receive time of a candidate at `now`: what was received before is
    /// forgotten, or about to be.
    pub fn kept_since(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - self.kept()
    }
}

/// What a cluster's size calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Threshold {
    Below,
    /// Propose it, with the rule that says so.
    Propose(String),
    /// Declare it, with the rule that says so.
    Declare(String),
}

/// The threshold a cluster of `complainants` distinct complainants, `burst` of them within
/// the burst window, has reached.
pub fn threshold(complainants: u32, burst: u32, config: &GroupingConfig) -> Threshold {
    if complainants >= config.declare_at {
        Threshold::Declare(format!("distinct complainants {complainants} >= {} (declare)", config.declare_at))
    } else if burst >= config.burst_count {
        Threshold::Declare(format!(
            "burst: {burst} distinct complainants within {} hours >= {} (declare)",
            config.burst_hours, config.burst_count
        ))
    } else if complainants >= config.propose_at {
        Threshold::Propose(format!("distinct complainants {complainants} >= {} (propose)", config.propose_at))
    } else {
        Threshold::Below
    }
}

/// A cluster a new complaint matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub cluster: String,
    /// Its incident's state, if it has one.
    pub incident: Option<redress_proto::redress::escalation::v1::IncidentState>,
    /// How many of its members the complaint matched.
    pub count: usize,
}

/// The cluster a complaint joins among those it matched: one whose incident still takes
/// members (declared before proposed or dismissed), else the one it matched most. A closed
/// incident's cluster takes nobody: it is over, and a new cluster starts.
pub fn choose(matched: &[Matched]) -> Option<&Matched> {
    use redress_proto::redress::escalation::v1::IncidentState as S;
    let rank = |m: &Matched| match m.incident {
        Some(S::Declared) => 3,
        Some(S::Proposed) => 2,
        Some(S::Dismissed) => 1,
        _ => 0,
    };
    matched
        .iter()
        .filter(|m| m.incident != Some(S::Closed))
        .max_by(|a, b| rank(a).cmp(&rank(b)).then(a.count.cmp(&b.count)).then(b.cluster.cmp(&a.cluster)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_kept_at_most_a_century() {
        let config = |late_days| GroupingConfig { late_days, ..GroupingConfig::default() };
        config(30).validate().unwrap();
        config(36_525 - 14).validate().unwrap();
        assert!(config(36_525 - 13).validate().is_err());
        let refused = config(u32::MAX).validate().unwrap_err().to_string();
        assert!(refused.contains("grouping.window_days + grouping.late_days"), "{refused}");
    }

    #[test]
    fn tokens_keep_the_matter_and_drop_what_every_complaint_says() {
        let t = tokens("我的信用卡被误扣了300元年费，要求银行尽快退还！");
        assert!(t.contains(&"信用卡".to_owned()) && t.contains(&"年费".to_owned()), "{t:?}");
        assert_eq!(without_amounts("扣了1,200.5元年费和2次费用"), "扣了        年费和  费用");
        assert_eq!(without_amounts("2026年3月"), "          ".chars().take(7).collect::<String>());
        for dropped in ["银行", "要求", "尽快", "300", "的"] {
            assert!(!t.contains(&dropped.to_owned()), "{dropped} in {t:?}");
        }
    }

    #[test]
    fn signatures_estimate_jaccard_and_alike_texts_share_a_bucket() {
        let params = MatchParams::default();
        let a = fingerprint("信用卡年费被误扣，系统升级后免年费条件没同步", "退还年费", "", "", &params);
        let b = fingerprint("系统升级导致信用卡免年费条件失效，被扣年费", "要求退还年费", "", "", &params);
        let c = fingerprint("手机银行升级后无法登录，人脸识别失败", "修复登录", "", "", &params);
        let shares = |x: &Fingerprint, y: &Fingerprint| x.buckets.iter().any(|k| y.buckets.contains(k));
        assert!(shares(&a, &b));
        assert!(similarity(&a, &b, &params).0 > similarity(&a, &c, &params).0);
        assert_eq!(fingerprint("同样的文字", "", "", "", &params), fingerprint("同样的文字", "", "", "", &params));
    }

    #[test]
    fn thresholds_propose_declare_and_burst() {
        let config = GroupingConfig::default();
        assert_eq!(threshold(4, 4, &config), Threshold::Below);
        assert!(matches!(threshold(5, 2, &config), Threshold::Propose(_)));
        assert!(matches!(threshold(20, 2, &config), Threshold::Declare(_)));
        assert!(matches!(threshold(12, 10, &config), Threshold::Declare(r) if r.starts_with("burst")));
        assert!(GroupingConfig { declare_at: 3, ..GroupingConfig::default() }.validate().is_err());
    }

    #[test]
    fn a_complaint_joins_an_incident_before_a_bigger_cluster_and_never_a_closed_one() {
        use redress_proto::redress::escalation::v1::IncidentState as S;
        let m = |c: &str, incident, count| Matched { cluster: c.to_owned(), incident, count };
        let options = [m("a", None, 5), m("b", Some(S::Proposed), 1), m("c", Some(S::Closed), 9)];
        assert_eq!(choose(&options).unwrap().cluster, "b");
        assert_eq!(choose(&[m("a", None, 1), m("d", None, 3)]).unwrap().cluster, "d");
        assert!(choose(&[m("c", Some(S::Closed), 9)]).is_none());
    }
}
