//! Classification and grading of complaints (D-CLS, D-SLA-1) and early-warning signals
//! (D-ESC-1): keyword rules plus a multinomial naive Bayes model over jieba tokens, trained
//! at start-up from the labelled corpus shipped in `data/classification/`. Every decision
//! carries the model version and its reasons (matched rules, weightiest tokens).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use jieba_rs::Jieba;
use redress_proto::redress::common::v1::Grade;
use redress_proto::redress::intake::v1::{
    Classification, ClassificationSource, Interaction, RiskSignal, RiskSignalKind, Taxonomy as TaxonomyProto,
    TaxonomyCode,
};
use serde::Deserialize;

/// Version of the rules and model below; recorded with every automatic classification.
pub const MODEL_VERSION: &str = "rules+nb@2026.1";

static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

const BANKING_TOML: &str = include_str!("../../data/taxonomy/banking.toml");
const GENERAL_TOML: &str = include_str!("../../data/taxonomy/general.toml");
const BANKING_TRAIN: &str = include_str!("../../data/classification/banking/train.jsonl");
/// The held-out evaluation set; never used for training.
pub const BANKING_HELDOUT: &str = include_str!("../../data/classification/banking/heldout.jsonl");

/// One coded value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Code {
    pub code: String,
    pub name: String,
}

/// A versioned taxonomy, loaded from TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub business_types: Vec<Code>,
    pub causes: Vec<Code>,
    pub rights: Vec<Code>,
    #[serde(default)]
    pub cause_rights: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("cannot parse taxonomy {0}: {1}")]
    Parse(String, String),
    #[error("taxonomy {0} is invalid: {1}")]
    Invalid(String, String),
}

impl Taxonomy {
    pub fn from_toml(source: &str, text: &str) -> Result<Self, TaxonomyError> {
        let t: Taxonomy = toml::from_str(text).map_err(|e| TaxonomyError::Parse(source.to_owned(), e.to_string()))?;
        let invalid = |m: String| TaxonomyError::Invalid(source.to_owned(), m);
        for (dimension, codes) in [("business_types", &t.business_types), ("causes", &t.causes), ("rights", &t.rights)]
        {
            let mut seen = HashSet::new();
            if codes.is_empty() {
                return Err(invalid(format!("{dimension} is empty")));
            }
            for c in codes {
                if c.code.trim().is_empty() || !seen.insert(c.code.as_str()) {
                    return Err(invalid(format!("{dimension} has an empty or repeated code {:?}", c.code)));
                }
            }
        }
        for (cause, rights) in &t.cause_rights {
            if !t.causes.iter().any(|c| &c.code == cause) {
                return Err(invalid(format!("cause_rights names unknown cause {cause}")));
            }
            if let Some(r) = rights.iter().find(|r| !t.rights.iter().any(|x| &x.code == *r)) {
                return Err(invalid(format!("cause_rights names unknown right {r}")));
            }
        }
        Ok(t)
    }

    /// The shipped banking taxonomy.
    pub fn banking() -> Self {
        #[allow(clippy::expect_used)]
        Self::from_toml("banking.toml", BANKING_TOML).expect("the shipped banking taxonomy is valid")
    }

    /// The shipped general-enterprise taxonomy.
    pub fn general() -> Self {
        #[allow(clippy::expect_used)]
        Self::from_toml("general.toml", GENERAL_TOML).expect("the shipped general taxonomy is valid")
    }

    /// "name@version".
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    pub fn has_business_type(&self, code: &str) -> bool {
        self.business_types.iter().any(|c| c.code == code)
    }

    pub fn has_cause(&self, code: &str) -> bool {
        self.causes.iter().any(|c| c.code == code)
    }

    pub fn has_right(&self, code: &str) -> bool {
        self.rights.iter().any(|c| c.code == code)
    }

    pub fn to_proto(&self, active: bool) -> TaxonomyProto {
        let codes =
            |v: &[Code]| v.iter().map(|c| TaxonomyCode { code: c.code.clone(), name: c.name.clone() }).collect();
        TaxonomyProto {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            business_types: codes(&self.business_types),
            causes: codes(&self.causes),
            rights: codes(&self.rights),
            active,
        }
    }
}

/// A labelled example of the corpus.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub id: String,
    pub text: String,
    pub business_type: String,
    pub cause: String,
}

pub fn parse_corpus(jsonl: &str) -> Result<Vec<Example>, serde_json::Error> {
    jsonl.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect()
}

const STOPWORDS: &[&str] = &[
    "的", "了", "我", "是", "在", "和", "就", "也", "都", "还", "说", "你们", "我们", "他们", "这", "那", "有", "被",
    "给", "让", "把", "要", "没", "不", "又", "很", "吗", "呢", "吧", "啊", "着", "过", "对", "与", "及", "或", "后",
    "时", "再", "才", "并", "从", "到", "为", "但", "而", "一个", "什么", "这个", "那个", "客户", "贵行", "我行",
    "银行", "来电", "反映", "其", "该",
];

/// Tokens of a text: jieba's search-mode words, lower-cased, without punctuation, numbers and
/// stopwords.
pub fn tokens(text: &str) -> Vec<String> {
    static STOP: LazyLock<HashSet<&'static str>> = LazyLock::new(|| STOPWORDS.iter().copied().collect());
    JIEBA
        .cut_for_search(text, true)
        .into_iter()
        .map(|t| t.word.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .filter(|t| t.chars().any(|c| c.is_alphabetic()))
        .filter(|t| !STOP.contains(t.as_str()))
        .collect()
}

/// Multinomial naive Bayes with Laplace smoothing.
#[derive(Debug, Clone)]
struct NaiveBayes {
    classes: Vec<String>,
    log_prior: Vec<f64>,
    log_likelihood: HashMap<String, Vec<f64>>,
    /// Log-likelihood of a token never seen in training, per class.
    log_unseen: Vec<f64>,
}

const ALPHA: f64 = 0.5;

impl NaiveBayes {
    fn train(docs: &[(Vec<String>, &str)]) -> Self {
        let mut classes: Vec<String> = docs.iter().map(|(_, c)| (*c).to_owned()).collect();
        classes.sort();
        classes.dedup();
        let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let mut doc_count = vec![0f64; classes.len()];
        let mut token_total = vec![0f64; classes.len()];
        let mut counts: HashMap<String, Vec<f64>> = HashMap::new();
        for (tokens, class) in docs {
            let k = index[class];
            doc_count[k] += 1.0;
            for t in tokens {
                counts.entry(t.clone()).or_insert_with(|| vec![0.0; classes.len()])[k] += 1.0;
                token_total[k] += 1.0;
            }
        }
        let vocabulary = counts.len() as f64;
        let n = docs.len() as f64;
        let log_prior = doc_count.iter().map(|d| (d / n).ln()).collect();
        let denominators: Vec<f64> = token_total.iter().map(|t| t + ALPHA * vocabulary).collect();
        let log_unseen = denominators.iter().map(|d| (ALPHA / d).ln()).collect();
        let log_likelihood = counts
            .into_iter()
            .map(|(t, c)| {
                let l = c.iter().zip(&denominators).map(|(count, d)| ((count + ALPHA) / d).ln()).collect();
                (t, l)
            })
            .collect();
        Self { classes, log_prior, log_likelihood, log_unseen }
    }

    /// Log-scores per class (unnormalised log posteriors), in class order.
    fn scores(&self, tokens: &[String]) -> Vec<f64> {
        let mut scores = self.log_prior.clone();
        for t in tokens {
            let l = self.log_likelihood.get(t).unwrap_or(&self.log_unseen);
            for (s, x) in scores.iter_mut().zip(l) {
                *s += x;
            }
        }
        scores
    }

    /// How much each known token favours class `k` over the others (mean log-odds).
    fn weight(&self, token: &str, k: usize) -> f64 {
        let Some(l) = self.log_likelihood.get(token) else { return f64::NEG_INFINITY };
        let others = (l.iter().sum::<f64>() - l[k]) / (l.len().max(2) - 1) as f64;
        l[k] - others
    }
}

/// Keyword rules: a matched keyword adds `RULE_WEIGHT` to its class's log-score.
const RULE_WEIGHT: f64 = 2.5;

const BUSINESS_RULES: &[(&str, &[&str])] = &[
    ("B01", &["借记卡", "储蓄卡", "吞卡", "ATM", "工资卡", "社保卡"]),
    ("B02", &["信用卡", "分期", "最低还款", "账单日", "信用额度", "提额", "降额", "积分"]),
    ("B03", &["贷款", "房贷", "车贷", "按揭", "提前还款", "LPR", "放款", "借款", "经营贷", "消费贷"]),
    ("B04", &["存款", "定期", "存单", "活期", "大额存单", "储蓄"]),
    ("B05", &["转账", "汇款", "扫码", "二维码", "到账", "收款码", "跨行", "快捷支付"]),
    ("B06", &["保险", "基金", "代销", "贵金属", "保单", "银保", "金条"]),
    ("B07", &["理财", "净值", "赎回", "理财产品", "收益率"]),
    ("B08", &["征信", "个人信息", "信用报告", "查询记录", "泄露"]),
];

const CAUSE_RULES: &[(&str, &[&str])] = &[
    ("C01", &["态度", "不耐烦", "辱骂", "排队", "爱答不理", "甩脸", "嘲讽"]),
    ("C02", &["流程", "繁琐", "不给办理", "拒绝办理", "迟迟", "跑了好几趟", "材料"]),
    ("C03", &["没有告知", "未告知", "没告诉", "未提示", "没有提示", "隐瞒", "没说清"]),
    ("C04", &["搭售", "捆绑", "强制", "必须购买", "不买就", "强行"]),
    ("C05", &["手续费", "收费", "年费", "违约金", "罚息", "扣费", "服务费", "管理费"]),
    ("C06", &["合同", "条款", "格式条款", "协议"]),
    ("C07", &["营销", "推销", "骚扰", "诱导", "夸大", "忽悠"]),
    ("C08", &["催收", "通讯录", "上门催", "爆通讯录", "威胁"]),
    ("C09", &["盗刷", "诈骗", "被转走", "盗用", "冒用", "被盗", "骗子"]),
    ("C10", &["泄露", "隐私", "个人信息被", "卖给", "信息被"]),
];

fn matched<'a>(text: &str, rules: &'a [(&'a str, &'a [&'a str])]) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    for (class, words) in rules {
        for w in *words {
            if text.contains(w) {
                out.push((*class, *w));
            }
        }
    }
    out
}

/// Phrases that raise early-warning signals and grades (D-ESC-1, D-SLA-1).
const THREATS: &[&str] = &[
    "监管",
    "银保监",
    "金融监管总局",
    "12378",
    "人民银行",
    "消协",
    "消费者协会",
    "媒体",
    "曝光",
    "记者",
    "电视台",
    "法院",
    "起诉",
    "律师",
    "打官司",
    "报警",
    "12315",
];
const HEATED: &[&str] = &[
    "怎么回事",
    "从来没见过",
    "太过分",
    "欺人太甚",
    "气愤",
    "愤怒",
    "无耻",
    "垃圾",
    "骗子",
    "忍无可忍",
    "坑人",
    "黑心",
    "流氓",
    "！！",
];
const EXTREME: &[&str] = &["自杀", "跳楼", "轻生", "以死", "同归于尽", "不想活"];
const GROUP: &[&str] = &["集体", "群体", "多名客户", "很多客户", "上百人", "业主们", "联名"];

/// Amounts written like "80,000元", "8万元", "12.5万": the largest, in yuan.
fn largest_amount(text: &str) -> f64 {
    let chars: Vec<char> = text.chars().collect();
    let mut best = 0f64;
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == ',' || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().filter(|c| **c != ',').collect();
            let Ok(mut value) = number.trim_end_matches('.').parse::<f64>() else { continue };
            match chars.get(i) {
                Some('万') => value *= 10_000.0,
                Some('元' | '块') => {}
                _ => continue,
            }
            best = best.max(value);
        } else {
            i += 1;
        }
    }
    best
}

/// Compensation-scale amount from which a complaint is at least important.
const IMPORTANT_AMOUNT_YUAN: f64 = 50_000.0;

/// Classifies and grades complaint texts in one taxonomy.
#[derive(Debug, Clone)]
pub struct Classifier {
    taxonomy: Arc<Taxonomy>,
    business: NaiveBayes,
    cause: NaiveBayes,
}

/// What the classifier decided, before it is stamped with a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub classification: Classification,
    pub signals: Vec<RiskSignal>,
}

fn softmax_top(scores: &[f64]) -> (usize, f64) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    let (k, _) =
        scores.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, s)| if *s > best.1 { (i, *s) } else { best });
    (k, 1.0 / sum)
}

impl Classifier {
    /// The banking taxonomy with the model trained on the shipped corpus.
    pub fn banking() -> Self {
        #[allow(clippy::expect_used)]
        let corpus = parse_corpus(BANKING_TRAIN).expect("the shipped corpus parses");
        Self::train(Arc::new(Taxonomy::banking()), &corpus)
    }

    pub fn train(taxonomy: Arc<Taxonomy>, corpus: &[Example]) -> Self {
        let tokenised: Vec<(Vec<String>, &Example)> = corpus.iter().map(|e| (tokens(&e.text), e)).collect();
        let business: Vec<(Vec<String>, &str)> =
            tokenised.iter().map(|(t, e)| (t.clone(), e.business_type.as_str())).collect();
        let cause: Vec<(Vec<String>, &str)> = tokenised.iter().map(|(t, e)| (t.clone(), e.cause.as_str())).collect();
        Self { taxonomy, business: NaiveBayes::train(&business), cause: NaiveBayes::train(&cause) }
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// Business type and cause of a text, with the rules and tokens behind them.
    fn dimension(
        model: &NaiveBayes,
        rules: &[(&str, &[&str])],
        label: &str,
        text: &str,
        tokens: &[String],
        reasons: &mut Vec<String>,
        top: &mut Vec<String>,
    ) -> (String, f64) {
        let mut scores = model.scores(tokens);
        for (class, word) in matched(text, rules) {
            if let Some(k) = model.classes.iter().position(|c| c == class) {
                scores[k] += RULE_WEIGHT;
                reasons.push(format!("{label}:{word}→{class}"));
            }
        }
        let (k, confidence) = softmax_top(&scores);
        let mut weighted: Vec<(f64, &String)> =
            tokens.iter().map(|t| (model.weight(t, k), t)).filter(|(w, _)| w.is_finite() && *w > 0.0).collect();
        weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut seen = HashSet::new();
        for (_, t) in weighted.into_iter().filter(|(_, t)| seen.insert(t.as_str())).take(3) {
            if !top.contains(t) {
                top.push(t.clone());
            }
        }
        (model.classes[k].clone(), confidence)
    }

    /// Classifies `text`; `interaction` feeds the repeat-contact and long-wait signals.
    pub fn classify(&self, text: &str, interaction: Option<&Interaction>) -> Decision {
        let tokens = tokens(text);
        let mut matched_rules = Vec::new();
        let mut top_tokens = Vec::new();
        let (business_type, business_confidence) = Self::dimension(
            &self.business,
            BUSINESS_RULES,
            "business",
            text,
            &tokens,
            &mut matched_rules,
            &mut top_tokens,
        );
        let (cause, cause_confidence) =
            Self::dimension(&self.cause, CAUSE_RULES, "cause", text, &tokens, &mut matched_rules, &mut top_tokens);
        let rights = self.taxonomy.cause_rights.get(&cause).cloned().unwrap_or_default();
        let signals = signals(text, interaction);
        let (grade, grade_reasons) = grade(text, &signals);
        Decision {
            classification: Classification {
                taxonomy: self.taxonomy.id(),
                business_type,
                cause,
                rights,
                grade: grade as i32,
                source: ClassificationSource::Automatic as i32,
                model_version: MODEL_VERSION.to_owned(),
                matched_rules,
                top_tokens,
                business_type_confidence: business_confidence,
                cause_confidence,
                grade_reasons,
                ..Classification::default()
            },
            signals,
        }
    }
}

fn found(text: &str, phrases: &[&str]) -> Vec<String> {
    phrases.iter().filter(|p| text.contains(*p)).map(|p| (*p).to_owned()).collect()
}

/// Early-warning signals of a complaint (D-ESC-1).
pub fn signals(text: &str, interaction: Option<&Interaction>) -> Vec<RiskSignal> {
    let mut out = Vec::new();
    if let Some(i) = interaction {
        if i.contact_count > 3 {
            out.push(RiskSignal {
                kind: RiskSignalKind::RepeatContact as i32,
                evidence: vec![format!("contact_count={}", i.contact_count)],
            });
        }
        if i.wait_seconds > 300 {
            out.push(RiskSignal {
                kind: RiskSignalKind::LongWait as i32,
                evidence: vec![format!("wait_seconds={}", i.wait_seconds)],
            });
        }
    }
    let threats = found(text, THREATS);
    if !threats.is_empty() {
        out.push(RiskSignal { kind: RiskSignalKind::EscalationThreat as i32, evidence: threats });
    }
    let mut heated = found(text, HEATED);
    heated.extend(found(text, EXTREME));
    if !heated.is_empty() {
        out.push(RiskSignal { kind: RiskSignalKind::HeatedWording as i32, evidence: heated });
    }
    out
}

/// The grade of a complaint and why (D-SLA-1): major for threats to life or safety; urgent
/// for group complaints; important for escalation threats, large amounts or two or more
/// early-warning signals; general otherwise.
pub fn grade(text: &str, signals: &[RiskSignal]) -> (Grade, Vec<String>) {
    let extreme = found(text, EXTREME);
    if !extreme.is_empty() {
        return (Grade::Major, vec![format!("extreme wording: {}", extreme.join(","))]);
    }
    let group = found(text, GROUP);
    if !group.is_empty() {
        return (Grade::Urgent, vec![format!("group complaint: {}", group.join(","))]);
    }
    let mut reasons = Vec::new();
    if let Some(threat) = signals.iter().find(|s| s.kind == RiskSignalKind::EscalationThreat as i32) {
        reasons.push(format!("escalation threat: {}", threat.evidence.join(",")));
    }
    let amount = largest_amount(text);
    if amount >= IMPORTANT_AMOUNT_YUAN {
        reasons.push(format!("amount {amount:.0} yuan ≥ {IMPORTANT_AMOUNT_YUAN:.0}"));
    }
    if signals.len() >= 2 {
        reasons.push(format!("{} early-warning signals", signals.len()));
    }
    if reasons.is_empty() {
        (Grade::General, vec!["no aggravating factor".to_owned()])
    } else {
        (Grade::Important, reasons)
    }
}

/// Accuracy on a labelled set: (business type, cause), as fractions.
pub fn accuracy(classifier: &Classifier, examples: &[Example]) -> (f64, f64) {
    let mut business = 0usize;
    let mut cause = 0usize;
    for e in examples {
        let d = classifier.classify(&e.text, None).classification;
        business += usize::from(d.business_type == e.business_type);
        cause += usize::from(d.cause == e.cause);
    }
    let n = examples.len().max(1) as f64;
    (business as f64 / n, cause as f64 / n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn held_out_accuracy_beats_the_bar() {
        let classifier = Classifier::banking();
        let heldout = parse_corpus(BANKING_HELDOUT).unwrap();
        let train = parse_corpus(BANKING_TRAIN).unwrap();
        let train_texts: HashSet<&str> = train.iter().map(|e| e.text.as_str()).collect();
        assert!(heldout.iter().all(|e| !train_texts.contains(e.text.as_str())), "held-out texts are not trained on");
        let (business, cause) = accuracy(&classifier, &heldout);
        println!(
            "held-out accuracy ({} complaints, {MODEL_VERSION}): business type {:.1}%, cause {:.1}%",
            heldout.len(),
            business * 100.0,
            cause * 100.0
        );
        assert!(business >= 0.85, "business type accuracy {business:.3} below 0.85");
        assert!(cause >= 0.75, "cause accuracy {cause:.3} below 0.75");
    }

    #[test]
    fn decisions_carry_their_reasons_and_codes_from_the_taxonomy() {
        let classifier = Classifier::banking();
        let d = classifier.classify("信用卡年费未经同意被扣了300元，客服态度还很差，我要向金融监管总局投诉！", None);
        let c = &d.classification;
        assert_eq!((c.business_type.as_str(), c.taxonomy.as_str()), ("B02", "banking@2026.1"));
        assert!(classifier.taxonomy().has_cause(&c.cause));
        assert!(c.matched_rules.iter().any(|r| r == "business:信用卡→B02"), "{:?}", c.matched_rules);
        assert!(!c.top_tokens.is_empty());
        assert_eq!(c.grade, Grade::Important as i32);
        assert!(c.grade_reasons[0].contains("金融监管总局"), "{:?}", c.grade_reasons);
        assert_eq!(c.model_version, MODEL_VERSION);
        assert!(d.signals.iter().any(|s| s.kind == RiskSignalKind::EscalationThreat as i32));
    }

    #[test]
    fn grades_follow_severity() {
        assert_eq!(grade("我要跳楼", &[]).0, Grade::Major);
        assert_eq!(grade("小区业主们集体投诉房贷利率", &[]).0, Grade::Urgent);
        assert_eq!(grade("被扣了12.5万元", &[]).0, Grade::Important);
        assert_eq!(grade("被扣了80,000元", &[]).0, Grade::Important);
        assert_eq!(grade("被扣了300元", &[]).0, Grade::General);
    }

    #[test]
    fn interaction_metadata_raises_signals() {
        let i = Interaction { contact_count: 4, wait_seconds: 301 };
        let kinds: Vec<i32> = signals("普通咨询", Some(&i)).iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [RiskSignalKind::RepeatContact as i32, RiskSignalKind::LongWait as i32]);
        let calm = Interaction { contact_count: 3, wait_seconds: 300 };
        assert!(signals("普通咨询", Some(&calm)).is_empty());
        assert_eq!(grade("普通咨询", &signals("普通咨询", Some(&i))).0, Grade::Important);
    }

    #[test]
    fn taxonomies_load_and_bad_ones_are_refused() {
        assert_eq!(Taxonomy::general().id(), "general@2026.1");
        let bad = "name='x'\nversion='1'\n[[business_types]]\ncode='A'\nname='a'\n[[business_types]]\ncode='A'\nname='b'\n\
                   [[causes]]\ncode='C'\nname='c'\n[[rights]]\ncode='R'\nname='r'\n";
        assert!(matches!(Taxonomy::from_toml("bad", bad), Err(TaxonomyError::Invalid(..))));
    }
}
