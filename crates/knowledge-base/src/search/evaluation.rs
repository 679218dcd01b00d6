//! Search quality on the evaluation set (`data/eval/queries.toml`): the starter pack indexed,
//! every query searched as a platform-wide reader would, and the ranking scored by nDCG@5 and
//! by how often an answer is among the first three hits. Printed, and enforced.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde::Deserialize;

use super::text::Lexicon;
use super::{Boosts, Filters, Reader, SearchIndex, SearchQuery};

const QUERIES: &str = include_str!("../../data/eval/queries.toml");

#[derive(Deserialize)]
struct EvaluationSet {
    queries: Vec<Judged>,
}

#[derive(Deserialize)]
struct Judged {
    query: String,
    relevant: BTreeMap<String, u8>,
}

/// DCG of gains in rank order, over the first `k`.
fn dcg(gains: impl Iterator<Item = f64>, k: usize) -> f64 {
    gains.take(k).enumerate().map(|(i, gain)| (2f64.powf(gain) - 1.0) / ((i + 2) as f64).log2()).sum()
}

#[test]
fn the_starter_pack_is_found_by_handlers_queries() {
    let index = SearchIndex::in_memory(Lexicon::shipped().unwrap()).unwrap();
    let (_, articles) = crate::starter::pack().unwrap();
    for article in &articles {
        index.add(&article.published(article.slug.clone()).unwrap()).unwrap();
    }
    index.commit(0).unwrap();
    let set: EvaluationSet = toml::from_str(QUERIES).unwrap();
    assert!(set.queries.len() >= 50, "{} queries", set.queries.len());
    let slugs: Vec<&str> = articles.iter().map(|a| a.slug.as_str()).collect();
    let (mut ndcg_sum, mut top3) = (0.0, 0);
    let mut report = Vec::new();
    for judged in &set.queries {
        for slug in judged.relevant.keys() {
            assert!(slugs.contains(&slug.as_str()), "{}: judged article {slug} is not in the pack", judged.query);
        }
        let query = SearchQuery {
            text: judged.query.clone(),
            filters: Filters::default(),
            boosts: Boosts::default(),
            reader: Reader::All,
            offset: 0,
            limit: 5,
        };
        let hits: Vec<String> = index.search(&query).unwrap().into_iter().map(|h| h.id).collect();
        let gain = |slug: &String| f64::from(judged.relevant.get(slug).copied().unwrap_or(0));
        let mut ideal: Vec<f64> = judged.relevant.values().map(|g| f64::from(*g)).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let ndcg = dcg(hits.iter().map(gain), 5) / dcg(ideal.into_iter(), 5);
        let answered = hits.iter().take(3).any(|h| judged.relevant.get(h) == Some(&2));
        ndcg_sum += ndcg;
        top3 += usize::from(answered);
        report.push(format!("{ndcg:.2} {} {}  → {}", if answered { "✓" } else { "✗" }, judged.query, hits.join(", ")));
    }
    let n = set.queries.len() as f64;
    let (ndcg, rate) = (ndcg_sum / n, top3 as f64 / n);
    println!("{}", report.join("\n"));
    println!(
        "search evaluation: {} queries, nDCG@5 {ndcg:.3}, answer in top 3 {:.1} %",
        set.queries.len(),
        rate * 100.0
    );
    assert!(ndcg >= 0.8, "nDCG@5 {ndcg:.3} is below 0.8");
    assert!(rate >= 0.9, "an answer is in the top 3 for {:.1} % of queries, below 90 %", rate * 100.0);
}
