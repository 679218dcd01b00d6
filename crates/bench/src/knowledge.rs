//! `redress-bench --knowledge`: the knowledge base's search at 10,000 and at 100,000 articles
//! in one run. Articles are generated from the starter pack and written to the knowledge base's
//! SQLite store, and the search index is rebuilt from that store (timed); then the embedded
//! suite serves it and handler queries (the search evaluation set) are searched through the
//! gateway, one at a time and then as many at once as there are cores. Each search reports the
//! time it took at the service (`took`), beside the gateway round trip. Each query is also
//! timed alone at the index, with the number of articles it matches.
//!
//! A generated article takes its kind, codes and tags from a starter article, and its title and
//! body are composed: a product, a topic and a place from vocabularies whose words are used
//! with Zipf-like frequencies (a few products and topics are common, most are rare, as in an
//! institution's own knowledge base), and a body of clauses drawn from all the starter bodies.
//! Articles made by repeating the starter articles with a new number (as an earlier version of
//! this benchmark did) give every word a posting list of near-copies with equal scores spread
//! evenly over the index, so no block of postings can ever be skipped: a corpus no institution
//! has, which measures only that degenerate case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use redress::{Suite, SuiteOptions};
use redress_knowledge_base::domain::article::plan_seeded;
use redress_knowledge_base::domain::diff::sentences;
use redress_knowledge_base::domain::scope::Scope;
use redress_knowledge_base::search::text::Lexicon;
use redress_knowledge_base::search::{Boosts, Filters, Reader, SearchIndex, SearchQuery};
use redress_platform::db::DatabaseConfig;
use redress_platform::host::Supervisor;
use redress_platform::names::OrgUnit;
use redress_proto::redress::knowledge::v1::knowledge_service_client::KnowledgeServiceClient;
use redress_proto::redress::knowledge::v1::{ArticleContent, SearchArticlesRequest};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Args, bearer, channels};

const QUERIES: &str = include_str!("../../knowledge-base/data/eval/queries.toml");
/// Articles written per store transaction while generating.
const BATCH: usize = 2_000;
/// Targets, checked in the report.
const TARGET_P99_MS: f64 = 5.0;
const TARGET_REBUILD_S: f64 = 60.0;
/// Times each query is searched at the index in [`one_at_a_time`].
const ALONE_ROUNDS: usize = 40;

/// Searches one at a time at the index: their histogram and every query, slowest first.
type Alone = (Histogram<u64>, Vec<(f64, usize, String)>);

#[derive(Deserialize)]
struct QuerySet {
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Query {
    query: String,
}

/// Products and services an institution's articles are about.
const PRODUCTS: &[&str] = &[
    "信用卡",
    "借记卡",
    "房贷",
    "车贷",
    "消费贷",
    "经营贷",
    "理财产品",
    "基金定投",
    "大额存单",
    "结构性存款",
    "手机银行",
    "网上银行",
    "快捷支付",
    "跨境汇款",
    "外币兑换",
    "保管箱",
    "贵金属",
    "个人养老金",
    "白金卡",
    "联名卡",
    "公务卡",
    "商户收单",
    "二维码收款",
    "代发工资",
    "社保卡",
    "公积金贷款",
    "助学贷款",
    "装修贷",
    "重疾险",
    "医疗险",
    "意外险",
    "寿险",
    "年金险",
    "万能险",
    "分红险",
    "车险",
    "家财险",
    "旅行险",
    "宠物险",
    "信用保证保险",
    "保单贷款",
    "电子保单",
    "银保产品",
    "ETC",
    "数字人民币",
    "积分商城",
    "分期付款",
    "备用金",
    "留学贷款",
    "票据业务",
    "对公账户",
    "贷记卡",
    "预付卡",
    "储蓄国债",
    "保险代理",
    "养老理财",
    "现金管理",
];
/// What articles say about a product.
const TOPICS: &[&str] = &[
    "年费",
    "利息",
    "违约金",
    "分期手续费",
    "额度调整",
    "挂失",
    "冻结",
    "销户",
    "征信异议",
    "理赔",
    "退保",
    "犹豫期",
    "保全",
    "续期",
    "销售误导",
    "催收",
    "盗刷",
    "还款",
    "提前还款",
    "账单",
    "积分",
    "优惠活动",
    "开户",
    "转账限额",
    "短信通知",
    "密码重置",
    "人脸识别",
    "身份核验",
    "费用减免",
    "收益",
    "赎回",
    "风险评估",
    "合同条款",
    "隐私授权",
    "营销电话",
    "排队",
    "服务态度",
    "网点迁址",
    "系统故障",
    "退款",
    "拒赔",
    "免赔额",
    "等待期",
    "健康告知",
    "保费",
    "复利计算",
    "逾期",
    "协商还款",
    "投诉时效",
    "工单转派",
];
/// Where an article applies.
const PLACES: &[&str] = &[
    "总行",
    "北京分行",
    "上海分行",
    "广州分行",
    "深圳分行",
    "杭州分行",
    "南京分行",
    "成都分行",
    "武汉分行",
    "西安分行",
    "重庆分行",
    "天津分行",
    "苏州分行",
    "青岛分行",
    "长沙分行",
    "郑州分行",
    "沈阳分行",
    "厦门分行",
    "宁波分行",
    "合肥分行",
    "福州分行",
    "济南分行",
    "昆明分行",
    "南宁分行",
    "哈尔滨分行",
    "石家庄分行",
    "太原分行",
    "南昌分行",
    "贵阳分行",
    "兰州分行",
    "乌鲁木齐分行",
    "海口分行",
    "呼和浩特分行",
    "银川分行",
];
/// What an article of each kind is called in its title.
const KIND_WORDS: &[&str] = &["常见问题", "沟通话术", "操作指引", "法规解读", "典型案例", "回应口径", "风险提示"];

/// A small deterministic generator (xorshift), so every run writes the same articles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// An index below `n`, small ones far more often than large ones (about Zipf's law: the
    /// k-th is chosen about 1/k as often as the first).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n.saturating_sub(1))
    }
}

/// The clauses of all the starter bodies: their sentences cut at commas too.
fn clauses(pack: &[redress_knowledge_base::starter::StarterArticle]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for article in pack {
        for sentence in sentences(&article.content()?.body) {
            let sentence = sentence.trim_end_matches(['。', '！', '？', '；', '!', '?', ';']);
            out.extend(
                sentence.split(['，', ',']).map(str::trim).filter(|c| c.chars().count() >= 4).map(str::to_owned),
            );
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Article `n` of the generated corpus: kind, codes and tags from a starter article; title and
/// body composed (see the module's documentation).
fn article(
    n: usize,
    pack: &[redress_knowledge_base::starter::StarterArticle],
    clauses: &[String],
) -> anyhow::Result<(ArticleContent, redress_proto::redress::knowledge::v1::ArticleKind)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
    let base = &pack[rng.below(pack.len())];
    let kind = base.kind()?;
    let mut content: ArticleContent = base.content()?;
    let product = PRODUCTS[rng.zipf(PRODUCTS.len())];
    let topic = TOPICS[rng.zipf(TOPICS.len())];
    let place = PLACES[rng.zipf(PLACES.len())];
    let kind_word = KIND_WORDS[(kind as usize).saturating_sub(1) % KIND_WORDS.len()];
    content.title = format!("{place}{product}{topic}{kind_word}（第{n}号）");
    content.tags = content.tags.into_iter().take(1 + rng.below(2)).collect();
    content.tags.push(product.to_owned());
    content.tags.push(topic.to_owned());
    let mut body = format!("本文适用于{place}{product}的{topic}问题。");
    for sentence in 0..2 + rng.below(4) {
        let parts: Vec<&str> = (0..2 + rng.below(3)).map(|_| clauses[rng.below(clauses.len())].as_str()).collect();
        body.push_str(&parts.join("，"));
        body.push('。');
        if sentence == 0 && rng.below(3) == 0 {
            body.push_str(&format!("涉及{}时，按{}的相关规定办理。", PRODUCTS[rng.zipf(PRODUCTS.len())], place));
        }
    }
    content.body = body;
    Ok((content, kind))
}

/// Writes articles `from..to` (generated) into the store at `database`.
async fn generate(database: &DatabaseConfig, from: usize, to: usize) -> anyhow::Result<()> {
    let tasks = Supervisor::detached();
    let store = redress_knowledge_base::open_store(database, &tasks).await?;
    let (_, pack) = redress_knowledge_base::starter::pack()?;
    let clauses = clauses(&pack)?;
    let now = redress_platform::time::now();
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let mut plans = Vec::with_capacity(end - i);
        for n in i..end {
            let (content, kind) = article(n, &pack, &clauses)?;
            // Nine in ten belong to one of 50 institutions, the rest to the whole platform.
            let scope = if n % 10 == 0 {
                Scope::Platform
            } else {
                Scope::Unit(
                    OrgUnit::try_from_str(&format!("institutions/bench-{}", n % 50)).map_err(anyhow::Error::msg)?,
                )
            };
            let id = format!("00000000-0000-7000-8000-{n:012}");
            plans.push(plan_seeded(&id, kind, &scope, content, ("bench:author", "bench:reviewer"), now));
        }
        store.seed(plans).await?;
        i = end;
    }
    tasks.stop().await;
    Ok(())
}

/// Rebuilds the index in `dir` from the store (the directory emptied first); returns seconds.
async fn rebuild(database: &DatabaseConfig, dir: &std::path::Path) -> anyhow::Result<(f64, u64, Alone)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let tasks = Supervisor::detached();
    let store = redress_knowledge_base::open_store(database, &tasks).await?;
    let started = Instant::now();
    let (index, _) =
        redress_knowledge_base::open_index(&dir.display().to_string(), Lexicon::shipped()?, &store).await?;
    let seconds = started.elapsed().as_secs_f64();
    let articles = index.len();
    let alone = tokio::task::spawn_blocking(move || one_at_a_time(&index)).await??;
    tasks.stop().await;
    Ok((seconds, articles, alone))
}

/// Each query of the set searched at the index itself, one at a time in one thread (no RPC,
/// nothing else running): the cost of the search alone, for comparison with the time the
/// service reports. Returns the histogram and every query (mean ms, the articles it matches,
/// the query), slowest first.
fn one_at_a_time(index: &SearchIndex) -> anyhow::Result<Alone> {
    let set: QuerySet = toml::from_str(QUERIES)?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut means = Vec::new();
    for query in set.queries {
        let search = SearchQuery {
            text: query.query.clone(),
            filters: Filters::default(),
            boosts: Boosts::default(),
            reader: Reader::All,
            offset: 0,
            limit: 10,
        };
        index.search_page(&search)?;
        let mut total = 0.0;
        for _ in 0..ALONE_ROUNDS {
            let started = Instant::now();
            index.search_page(&search)?;
            let took = started.elapsed();
            histogram.record((took.as_micros() as u64).max(1))?;
            total += took.as_secs_f64() * 1000.0;
        }
        let matching = index.matching(&search)?;
        means.push((total / ALONE_ROUNDS as f64, matching, query.query));
    }
    means.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok((histogram, means))
}

/// What one load of searches measured.
struct Measured {
    server: Histogram<u64>,
    round_trip: Histogram<u64>,
    searches: u64,
    errors: u64,
    elapsed: Duration,
}

fn ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

/// Searches the query set through the gateway from `concurrency` tasks for warm-up plus the
/// measured seconds.
async fn searches(suite: &Suite, token: &str, args: &Args, concurrency: usize) -> anyhow::Result<Measured> {
    let set: QuerySet = toml::from_str(QUERIES)?;
    let queries: Arc<Vec<String>> = Arc::new(set.queries.into_iter().map(|q| q.query).collect());
    let gateway = channels(suite.gateway_addr, args.connections).await?;
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    for worker in 0..concurrency {
        let (queries, token) = (queries.clone(), token.clone());
        let mut client = KnowledgeServiceClient::new(gateway[worker % gateway.len()].clone());
        tasks.spawn(async move {
            let mut server = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut round_trip = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut done, mut errors, mut i) = (0u64, 0u64, worker);
            loop {
                let issued = Instant::now();
                if issued >= end {
                    break;
                }
                let request = SearchArticlesRequest { query: queries[i % queries.len()].clone(), ..Default::default() };
                i += concurrency;
                let answer = client.search_articles(bearer(tonic::Request::new(request), &token)).await;
                let finished = Instant::now();
                if issued < measure_from || finished > end {
                    continue;
                }
                match answer {
                    Ok(response) => {
                        let took = response.into_inner().took.unwrap_or_default();
                        let took_us = u64::try_from(took.seconds).unwrap_or(0) * 1_000_000
                            + u64::try_from(took.nanos).unwrap_or(0) / 1000;
                        server.record(took_us.max(1))?;
                        round_trip.record((finished - issued).as_micros().max(1) as u64)?;
                        done += 1;
                    }
                    Err(status) => {
                        if errors == 0 {
                            eprintln!("search: {status}");
                        }
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((server, round_trip, done, errors))
        });
    }
    let mut measured = Measured {
        server: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        round_trip: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        searches: 0,
        errors: 0,
        elapsed: Duration::from_secs(args.seconds),
    };
    while let Some(joined) = tasks.join_next().await {
        let (server, round_trip, done, errors) = joined??;
        measured.server.add(server)?;
        measured.round_trip.add(round_trip)?;
        measured.searches += done;
        measured.errors += errors;
    }
    Ok(measured)
}

async fn wait_knowledge_serving(suite: &Suite) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = channels(suite.gateway_addr, 1).await?.remove(0);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..2400 {
        let request = tonic_health::pb::HealthCheckRequest { service: redress_proto::services::KNOWLEDGE.to_owned() };
        if health.check(request).await?.into_inner().status == ServingStatus::Serving as i32 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("the knowledge base did not become SERVING")
}

/// What one size measured.
struct AtSize {
    rebuild_s: f64,
    /// One search at a time through the gateway, and as many at once as there are cores.
    alone_rpc: Measured,
    loaded: Measured,
    /// One search at a time at the index, and every query's mean time and matches.
    at_index: Histogram<u64>,
    queries: Vec<(f64, usize, String)>,
}

impl AtSize {
    /// Milliseconds per thousand matching articles over the whole query set.
    fn per_thousand_matches(&self) -> f64 {
        let ms: f64 = self.queries.iter().map(|q| q.0).sum();
        let matches: usize = self.queries.iter().map(|q| q.1).sum();
        ms * 1000.0 / matches.max(1) as f64
    }

    fn matches(&self) -> usize {
        self.queries.iter().map(|q| q.1).sum()
    }
}

fn report(total: usize, label: &str, measured: &Measured) {
    println!(
        "{total:>7} articles, {label}: {:>6.0} searches/s  server p50 {:.2} ms  p99 {:.2} ms   gateway round trip p50 {:.2} ms  p99 {:.2} ms   errors {}",
        measured.searches as f64 / measured.elapsed.as_secs_f64(),
        ms(&measured.server, 0.5),
        ms(&measured.server, 0.99),
        ms(&measured.round_trip, 0.5),
        ms(&measured.round_trip, 0.99),
        measured.errors
    );
}

/// One size: the store grown to `total` articles, the index rebuilt from it, then searched.
async fn at_size(
    dir: &std::path::Path,
    database: &DatabaseConfig,
    from: usize,
    total: usize,
    args: &Args,
    concurrency: usize,
) -> anyhow::Result<AtSize> {
    let started = Instant::now();
    generate(database, from, total).await.context("generating articles")?;
    println!(
        "{total} articles in the store ({:.1} s to write {} of them)",
        started.elapsed().as_secs_f64(),
        total - from
    );
    let index_dir = dir.join("knowledge-base-index");
    let (rebuild_s, indexed, (at_index, queries)) =
        rebuild(database, &index_dir).await.context("rebuilding the index")?;
    println!("index rebuilt from the store: {indexed} articles in {rebuild_s:.1} s");
    println!(
        "one search at a time at the index: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms; slowest queries:",
        ms(&at_index, 0.5),
        ms(&at_index, 0.9),
        ms(&at_index, 0.99),
        ms(&at_index, 1.0)
    );
    for (mean, matching, query) in queries.iter().take(5) {
        let per = mean * 1000.0 / (*matching).max(1) as f64;
        println!("    {mean:>6.2}  {matching:>6} articles match ({per:.2} µs each)  {query}");
    }
    let token = "bench-token";
    let shutdown = CancellationToken::new();
    let suite = Suite::start(
        SuiteOptions {
            data_dir: dir.to_owned(),
            gateway_addr: "127.0.0.1:0".to_owned(),
            dev_token: token.to_owned(),
            ..SuiteOptions::default()
        },
        shutdown.clone(),
    )
    .await?;
    wait_knowledge_serving(&suite).await?;
    let alone_rpc = searches(&suite, token, args, 1).await?;
    report(total, "one at a time", &alone_rpc);
    let loaded = searches(&suite, token, args, concurrency).await?;
    report(total, &format!("{concurrency} at once"), &loaded);
    suite.stop().await?;
    Ok(AtSize { rebuild_s, alone_rpc, loaded, at_index, queries })
}

/// Runs the knowledge-base benchmark: 10,000 articles, then 100,000, in one run.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    // One search at a time (the latency of a search), then as many at once as the machine has
    // cores (the client, the gateway and the suite share those cores, so that time includes
    // waiting for them).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = args.concurrency.min(cores);
    println!(
        "knowledge-base search: {} s measured after {} s warm-up, one at a time and {concurrency} at once, {cores} cores",
        args.seconds, args.warmup
    );
    let dir = tempfile::tempdir().context("temp dir")?;
    let database = DatabaseConfig {
        url: format!("sqlite://{}", dir.path().join("knowledge-base.db").display()),
        max_connections: 8,
        ..Default::default()
    };
    let small = at_size(dir.path(), &database, 0, 10_000, args, concurrency).await?;
    let large = at_size(dir.path(), &database, 10_000, 100_000, args, concurrency).await?;
    let p99 = |m: &Measured| ms(&m.server, 0.99);
    let (p99_small, p99_large) = (p99(&small.alone_rpc), p99(&large.alone_rpc));
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!();
    println!("summary (server-side = `took` at the knowledge base; round trip = through the gateway):");
    for (label, small_m, large_m) in
        [("one at a time", &small.alone_rpc, &large.alone_rpc), ("at once", &small.loaded, &large.loaded)]
    {
        println!(
            "  {label:<13}  p99 at 10k server {:.2} ms (round trip {:.2}), at 100k server {:.2} ms (round trip {:.2}); ratio {:.2}",
            p99(small_m),
            ms(&small_m.round_trip, 0.99),
            p99(large_m),
            ms(&large_m.round_trip, 0.99),
            p99(large_m) / p99(small_m)
        );
    }
    println!(
        "  at the index, one at a time: p99 at 10k {:.2} ms, at 100k {:.2} ms (ratio {:.2})",
        ms(&small.at_index, 0.99),
        ms(&large.at_index, 0.99),
        ms(&large.at_index, 0.99) / ms(&small.at_index, 0.99)
    );
    println!(
        "  articles the queries match: {} at 10k, {} at 100k (×{:.1}); time per 1,000 matches {:.3} ms at 10k, {:.3} ms at 100k (ratio {:.2})",
        small.matches(),
        large.matches(),
        large.matches() as f64 / small.matches().max(1) as f64,
        small.per_thousand_matches(),
        large.per_thousand_matches(),
        large.per_thousand_matches() / small.per_thousand_matches()
    );
    println!("  p99 at 100k ≤ {TARGET_P99_MS} ms server-side, one at a time: {}", verdict(p99_large <= TARGET_P99_MS));
    println!(
        "  p99 100k / 10k = {:.2} (≤ 2), one at a time: {}",
        p99_large / p99_small,
        verdict(p99_large <= 2.0 * p99_small)
    );
    println!(
        "  rebuild 10k {:.1} s, 100k {:.1} s (≤ {TARGET_REBUILD_S} s): {}",
        small.rebuild_s,
        large.rebuild_s,
        verdict(large.rebuild_s <= TARGET_REBUILD_S)
    );
    Ok(())
}
