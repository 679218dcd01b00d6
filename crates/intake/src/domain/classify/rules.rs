//! What the classifier reads besides its corpus: each taxonomy's keyword rules and stopwords,
//! the phrases behind early-warning signals and grades, and [`Words`], which matches all of
//! them against whole words of a text rather than any run of characters.

use std::collections::HashSet;
use std::sync::LazyLock;

use jieba_rs::Jieba;

/// jieba with its default dictionary and the words a keyword must not cross (shared by the
/// services of a process).
pub(super) fn segmenter() -> &'static Jieba {
    redress_platform::segmenter::segmenter()
}

/// A text cut into words for matching keywords and phrases.
///
/// A keyword matches where it starts and ends on word boundaries: it is a word of jieba's
/// default cut or a run of consecutive words (提前还款 = 提前|还款), compared without regard to
/// ASCII case (ATM matches atm). The cut runs without HMM, whose guesses glue unknown
/// characters to their neighbours (ATM机吞卡 would give 机吞卡). A word of four or more
/// characters made of two dictionary words of two or more characters each also has the
/// boundary between them (定期存款 = 定期 + 存款, 金融监管 = 金融 + 监管). So 银保 does not match
/// 银保监会 (银|保监会), 律师 does not match 律师费, 储蓄 does not match 储蓄卡.
#[derive(Debug, Clone)]
pub struct Words {
    folded: String,
    /// Byte offsets of the word boundaries in `folded` (the same as in the text: only ASCII
    /// letters are folded).
    bounds: HashSet<usize>,
}

impl Words {
    pub fn of(text: &str) -> Self {
        let mut bounds = HashSet::new();
        for token in segmenter().cut(text, false) {
            bounds.insert(token.byte_start);
            bounds.insert(token.byte_end);
            let offsets: Vec<usize> = token.word.char_indices().map(|(i, _)| i).collect();
            if offsets.len() >= 4 {
                for &at in &offsets[2..=offsets.len() - 2] {
                    let (left, right) = token.word.split_at(at);
                    if segmenter().has_word(left) && segmenter().has_word(right) {
                        bounds.insert(token.byte_start + at);
                    }
                }
            }
        }
        Self { folded: text.to_ascii_lowercase(), bounds }
    }

    /// Whether `keyword` occurs in the text as whole words.
    pub fn contains(&self, keyword: &str) -> bool {
        let keyword = keyword.trim().to_ascii_lowercase();
        if keyword.is_empty() {
            return false;
        }
        let mut from = 0;
        while let Some(found) = self.folded.get(from..).and_then(|rest| rest.find(&keyword)) {
            let start = from + found;
            if self.bounds.contains(&start) && self.bounds.contains(&(start + keyword.len())) {
                return true;
            }
            // The next occurrence may overlap this one: go on from its second character.
            from = start + self.folded[start..].chars().next().map_or(1, char::len_utf8);
        }
        false
    }

    /// The phrases of `phrases` that occur as whole words, in list order.
    pub fn found(&self, phrases: &[&str]) -> Vec<String> {
        phrases.iter().filter(|p| self.contains(p)).map(|p| (*p).to_owned()).collect()
    }
}

/// Keywords by class: a matched keyword adds weight to its class.
pub type Rules = &'static [(&'static str, &'static [&'static str])];

/// The keyword rules and stopwords of a taxonomy. Rules name codes; a code the taxonomy in
/// force does not have is ignored.
#[derive(Debug)]
pub struct Lexicon {
    pub business: Rules,
    pub cause: Rules,
    /// Words too common in this taxonomy's complaints to tell classes apart, besides
    /// [`STOPWORDS`].
    pub stopwords: &'static [&'static str],
}

impl Lexicon {
    /// The lexicon of the taxonomy named `name`: the shipped ones' own, none for another.
    pub fn of(name: &str) -> &'static Lexicon {
        match name {
            "banking" => &BANKING,
            "general" => &GENERAL,
            _ => &PLAIN,
        }
    }

    /// Whether `token` is a stopword here.
    pub fn is_stopword(&self, token: &str) -> bool {
        static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| STOPWORDS.iter().copied().collect());
        COMMON.contains(token) || self.stopwords.contains(&token)
    }
}

/// Stopwords of every taxonomy: function words and call-centre boilerplate.
const STOPWORDS: &[&str] = &[
    "的", "了", "我", "是", "在", "和", "就", "也", "都", "还", "说", "你们", "我们", "他们", "这", "那", "有", "被",
    "给", "让", "把", "要", "没", "不", "又", "很", "吗", "呢", "吧", "啊", "着", "过", "对", "与", "及", "或", "后",
    "时", "再", "才", "并", "从", "到", "为", "但", "而", "一个", "什么", "这个", "那个", "客户", "来电", "反映", "其",
    "该",
];

const PLAIN: Lexicon = Lexicon { business: &[], cause: &[], stopwords: &[] };

/// Banking (JR/T 0169 business types B, causes C).
const BANKING: Lexicon = Lexicon {
    business: &[
        ("B01", &["借记卡", "储蓄卡", "吞卡", "ATM", "工资卡", "社保卡"]),
        ("B02", &["信用卡", "分期", "最低还款", "账单日", "信用额度", "提额", "降额", "积分"]),
        ("B03", &["贷款", "房贷", "车贷", "按揭", "提前还款", "LPR", "放款", "借款", "经营贷", "消费贷"]),
        ("B04", &["存款", "定期", "存单", "活期", "大额存单", "储蓄"]),
        ("B05", &["转账", "汇款", "扫码", "二维码", "到账", "收款码", "跨行", "快捷支付"]),
        ("B06", &["保险", "基金", "代销", "贵金属", "保单", "银保", "金条"]),
        ("B07", &["理财", "净值", "赎回", "理财产品", "收益率"]),
        ("B08", &["征信", "个人信息", "信用报告", "查询记录", "泄露"]),
        ("B09", &["残损", "残缺", "硬币", "零钱", "零钞", "假币", "纸币", "纪念币", "拒收现金", "不收现金"]),
    ],
    cause: &[
        ("C01", &["态度", "不耐烦", "辱骂", "排队", "爱答不理", "甩脸色", "嘲讽"]),
        ("C02", &["流程", "繁琐", "不给办理", "拒绝办理", "迟迟", "跑了好几趟", "材料"]),
        ("C03", &["没有告知", "未告知", "没告诉", "未提示", "没有提示", "隐瞒", "没说清楚", "没讲清楚"]),
        ("C04", &["搭售", "捆绑", "强制", "必须购买", "不买就", "强行"]),
        ("C05", &["手续费", "收费", "年费", "违约金", "罚息", "扣费", "服务费", "管理费"]),
        ("C06", &["合同", "签合同", "条款", "格式条款", "协议"]),
        ("C07", &["营销", "推销", "骚扰", "诱导", "夸大", "忽悠"]),
        ("C08", &["催收", "通讯录", "上门催", "爆通讯录", "威胁"]),
        ("C09", &["盗刷", "被盗刷", "诈骗", "被转走", "盗用", "冒用", "被盗", "骗子"]),
        ("C10", &["泄露", "隐私", "个人信息被", "卖给", "信息被"]),
        (
            "C11",
            &["系统故障", "故障", "闪退", "死机", "登录不了", "无法登录", "登不上", "系统升级", "系统维护", "吞钞"],
        ),
        ("C12", &["不及预期", "业绩比较基准", "预期收益", "收益偏低", "收益不达标"]),
    ],
    stopwords: &["贵行", "我行", "银行"],
};

/// General enterprises (business types G, causes K).
const GENERAL: Lexicon = Lexicon {
    business: &[
        ("G01", &["质量问题", "做工", "开裂", "起球", "褪色", "掉色", "变质", "发霉", "异物", "异味", "瑕疵"]),
        ("G02", &["售后", "维修", "保修", "退货", "换货", "退换", "三包", "返修", "七天无理由"]),
        ("G03", &["快递", "物流", "配送", "送货", "快递员", "包裹", "派送", "驿站", "丢件", "外卖员", "骑手"]),
        ("G07", &["态度", "不耐烦", "辱骂", "骂人", "爱答不理", "甩脸色", "冷嘲热讽", "翻白眼"]),
        ("G08", &["价格", "乱收费", "多收", "差价", "价保", "涨价", "标价", "明码标价", "扣费", "套餐"]),
        ("G09", &["发票", "霸王条款", "最低消费", "自带酒水", "营业执照", "资质", "未成年人", "最终解释权"]),
        (
            "G10",
            &["个人信息", "泄露", "隐私", "诈骗", "骗子", "假冒", "冒充", "假货", "以次充好", "翻新机", "缺斤短两"],
        ),
        ("G11", &["跑路", "倒闭", "关门", "停业", "闭店", "卫生", "物业", "转让", "失联", "换老板", "管理混乱"]),
    ],
    cause: &[
        ("K01", &["质量问题", "坏了", "开裂", "漏水", "变质", "不合格", "做工", "起球", "褪色"]),
        ("K02", &["乱收费", "多收", "差价", "收费", "涨价", "扣费", "价格"]),
        ("K03", &["虚假宣传", "宣传", "广告", "夸大", "货不对板", "与描述不符"]),
        ("K04", &["合同", "条款", "格式条款", "霸王条款", "协议", "最终解释权", "单方面"]),
        ("K05", &["安全", "爆炸", "起火", "烫伤", "受伤", "划伤", "漏电", "食物中毒", "隐患", "过敏"]),
        ("K06", &["态度", "辱骂", "不耐烦", "骂人", "甩脸色", "冷嘲热讽", "翻白眼"]),
        ("K07", &["个人信息", "泄露", "隐私", "骚扰电话", "信息被"]),
        ("K08", &["拖延", "迟迟", "推诿", "踢皮球", "不给退", "拒绝退款", "至今", "没人管", "一拖再拖"]),
        ("K09", &["强制", "搭售", "捆绑", "强行", "必须购买", "不买就", "默认勾选", "强制消费", "最低消费"]),
        ("K10", &["假货", "欺诈", "诈骗", "以次充好", "翻新", "冒充", "缺斤短两", "调包", "骗子"]),
    ],
    stopwords: &["贵公司", "我司", "公司", "商家", "消费者"],
};

/// Phrases that raise early-warning signals and grades (D-ESC-1, D-SLA-1), matched as whole
/// words. 监管 counts wherever it is a word or one of two words of a longer one (监管部门,
/// 金融监管总局): a complainant naming the regulator is what the signal is for.
pub const THREATS: &[&str] = &[
    "监管",
    "监管局",
    "银保监",
    "银保监会",
    "银保监局",
    "保监会",
    "金融监管总局",
    "12378",
    "人民银行",
    "消协",
    "消费者协会",
    "市场监管局",
    "工商局",
    "市长热线",
    "市民热线",
    "媒体",
    "自媒体",
    "曝光",
    "记者",
    "电视台",
    "法院",
    "起诉",
    "律师",
    "律师函",
    "打官司",
    "报警",
    "12315",
];
pub const HEATED: &[&str] = &[
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
pub const EXTREME: &[&str] = &["自杀", "跳楼", "轻生", "以死", "同归于尽", "不想活"];
pub const GROUP: &[&str] = &[
    "集体",
    "群体",
    "群体性",
    "多名客户",
    "很多客户",
    "多名消费者",
    "很多消费者",
    "上百人",
    "业主们",
    "联名",
    "联名信",
    "维权群",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(text: &str, keyword: &str) -> bool {
        Words::of(text).contains(keyword)
    }

    #[test]
    fn keywords_match_words_not_runs_of_characters_across_them() {
        // Crossing a word boundary: no match.
        assert!(!matches("我要向银保监会投诉", "银保"));
        assert!(!matches("我要找银保监反映", "银保"));
        assert!(!matches("储蓄卡被冻结了", "储蓄"));
        assert!(!matches("保险柜的租金涨了", "保险"));
        assert!(!matches("钱转到账户里了", "到账"));
        // Whole words and runs of words: a match.
        assert!(matches("我买的银保产品有问题", "银保"));
        assert!(matches("我要提前还款", "提前还款"));
        assert!(matches("我的个人信息被泄露了", "个人信息被"));
        assert!(matches("钱还没到账", "到账"));
        assert!(matches("atm吞卡了", "ATM"));
        assert!(matches("ATM机吞卡了", "吞卡"));
        assert!(matches("定期存款到期", "存款"));
        assert!(matches("卡被人盗刷", "盗刷"));
        assert!(!matches("", "ATM"));
        assert!(!matches("ATM", ""));
    }

    #[test]
    fn phrases_of_signals_match_words_too() {
        let threats = |text: &str| Words::of(text).found(THREATS);
        // 银保监会 is one word of the suite's dictionary: the regulator's full name is the phrase found.
        assert_eq!(threats("我要向银保监会投诉"), ["银保监会"]);
        assert_eq!(threats("我要找银保监反映"), ["银保监"]);
        assert_eq!(threats("请了律师"), ["律师"]);
        assert!(threats("律师费太高了").is_empty(), "a lawyer's fee is no threat");
        assert!(threats("多媒体教室的投影仪坏了").is_empty());
        // 监管 is a threat wherever it names the regulator, also inside a longer word.
        assert_eq!(threats("向监管部门反映"), ["监管"]);
        assert_eq!(threats("我去金融监管总局投诉"), ["监管", "金融监管总局"]);
        assert_eq!(threats("向市场监管局举报"), ["监管局", "市场监管局"]);
        assert!(Words::of("联名卡的年费").found(GROUP).is_empty(), "a co-branded card is no group");
        assert_eq!(Words::of("我们写了联名信").found(GROUP), ["联名信"]);
        assert!(Words::of("跳楼价甩卖").found(EXTREME).is_empty(), "a sales slogan is no threat to life");
        assert_eq!(Words::of("逼得我要跳楼").found(EXTREME), ["跳楼"]);
        assert_eq!(Words::of("太过分了！！").found(HEATED), ["太过分", "！！"]);
    }
}
