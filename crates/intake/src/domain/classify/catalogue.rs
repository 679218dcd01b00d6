//! The taxonomies intake knows and the classifier of each that has a model (D-CLS).
//!
//! Shipped: banking and general enterprise, each with a model trained on its shipped corpus.
//! An institution may add its own taxonomies (`taxonomies_dir`); one is trained on the
//! labelled corpus given beside its file, and has no model without one. A file with a shipped
//! taxonomy's name and version replaces it and keeps the shipped model while the shipped
//! corpus's labels are all codes of the replacement.
//!
//! Institutions name the taxonomy they classify in (their regime's, or their own choice) as
//! `name` or `name@version`; a bare name is its highest loaded version. At start every named
//! taxonomy must be loaded and have a model: a complaint is never classified in a taxonomy
//! other than its institution's, and never left unclassified, so a taxonomy that cannot be
//! served stops the start with the configuration key at fault.

use std::sync::Arc;

use redress_proto::redress::intake::v1::Taxonomy as TaxonomyProto;

use super::{Classifier, CorpusError, Example, Taxonomy, shipped_corpus};

/// An institution's own taxonomy, with the labelled corpus its model is trained on if it
/// has one (`source` labels errors).
#[derive(Debug, Clone)]
pub struct OwnTaxonomy {
    pub taxonomy: Taxonomy,
    pub corpus: Option<(String, Vec<Example>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("taxonomy {0} is given twice")]
    Duplicate(String),
    #[error("{key}: unknown taxonomy {reference:?}; loaded: {loaded}")]
    Unknown { key: String, reference: String, loaded: String },
    #[error(
        "{key}: taxonomy {id} has no model ({why}), so complaints cannot be classified in it; give it a labelled \
         corpus or name a taxonomy that has a model"
    )]
    NoModel { key: String, id: String, why: String },
}

/// A loaded taxonomy and its classifier, or why it has none.
#[derive(Debug, Clone)]
struct Entry {
    taxonomy: Arc<Taxonomy>,
    model: Result<Arc<Classifier>, String>,
}

/// Every taxonomy intake knows, in listing order (the shipped ones, then the institution's
/// own), with their classifiers.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<Entry>,
}

impl Catalogue {
    /// The shipped taxonomies and their models.
    pub fn shipped() -> Self {
        let entry = |c: Arc<Classifier>| Entry { taxonomy: c.taxonomy.clone(), model: Ok(c) };
        Self { entries: vec![entry(Classifier::banking()), entry(Classifier::general())] }
    }

    /// These taxonomies with an institution's own added (or replacing a shipped one of the
    /// same name and version), each trained on its corpus. A corpus that does not fit its
    /// taxonomy, or two files of the same taxonomy, are errors.
    pub fn with_own(mut self, own: Vec<OwnTaxonomy>) -> Result<Self, CatalogueError> {
        let shipped: Vec<String> = self.entries.iter().map(|e| e.taxonomy.id()).collect();
        let mut added = Vec::new();
        for OwnTaxonomy { taxonomy, corpus } in own {
            let id = taxonomy.id();
            if added.contains(&id) {
                return Err(CatalogueError::Duplicate(id));
            }
            added.push(id.clone());
            let taxonomy = Arc::new(taxonomy);
            let model = match corpus {
                Some((source, examples)) => Ok(Arc::new(Classifier::train(taxonomy.clone(), &source, &examples)?)),
                None if shipped.contains(&id) => {
                    // The shipped corpus still fits a replacement that renames but keeps codes.
                    let examples = shipped_corpus(&taxonomy.name).unwrap_or_default();
                    Classifier::train(taxonomy.clone(), "shipped", &examples)
                        .map(Arc::new)
                        .map_err(|e| format!("it replaces the shipped taxonomy, whose corpus does not fit it: {e}"))
                }
                None => Err("no labelled corpus beside its file".to_owned()),
            };
            let entry = Entry { taxonomy, model };
            match self.entries.iter_mut().find(|e| e.taxonomy.id() == id) {
                Some(existing) => *existing = entry,
                None => self.entries.push(entry),
            }
        }
        Ok(self)
    }

    /// Every loaded taxonomy, in listing order.
    pub fn taxonomies(&self) -> impl Iterator<Item = &Taxonomy> {
        self.entries.iter().map(|e| e.taxonomy.as_ref())
    }

    /// The taxonomy `reference` names: `name@version` exactly, or a bare `name`'s highest
    /// loaded version.
    fn entry(&self, reference: &str) -> Option<&Entry> {
        let reference = reference.trim();
        if reference.contains('@') {
            return self.entries.iter().find(|e| e.taxonomy.id() == reference);
        }
        self.entries
            .iter()
            .filter(|e| e.taxonomy.name == reference)
            .max_by(|a, b| version_key(&a.taxonomy.version).cmp(&version_key(&b.taxonomy.version)))
    }

    /// The taxonomy `reference` names (see [`Catalogue::classifier`]).
    pub fn taxonomy(&self, reference: &str) -> Option<&Taxonomy> {
        self.entry(reference).map(|e| e.taxonomy.as_ref())
    }

    /// The classifier of the taxonomy `reference` names (`name` or `name@version`), if it is
    /// loaded and has a model.
    pub fn classifier(&self, reference: &str) -> Option<&Arc<Classifier>> {
        self.entry(reference).and_then(|e| e.model.as_ref().ok())
    }

    /// Checks that every `(configuration key, taxonomy)` is loaded and has a model.
    pub fn check(&self, uses: &[(String, String)]) -> Result<(), CatalogueError> {
        for (key, reference) in uses {
            let entry = self.entry(reference).ok_or_else(|| CatalogueError::Unknown {
                key: key.clone(),
                reference: reference.clone(),
                loaded: self.taxonomies().map(Taxonomy::id).collect::<Vec<_>>().join(", "),
            })?;
            if let Err(why) = &entry.model {
                return Err(CatalogueError::NoModel { key: key.clone(), id: entry.taxonomy.id(), why: why.clone() });
            }
        }
        Ok(())
    }

    /// Every taxonomy for ListTaxonomies; those with a model that some institution
    /// classifies in (`in_use`, as configured) are active.
    pub fn to_proto<'a>(&self, in_use: impl IntoIterator<Item = &'a str>) -> Vec<TaxonomyProto> {
        let active: Vec<String> =
            in_use.into_iter().filter_map(|r| self.classifier(r)).map(|c| c.taxonomy().id()).collect();
        self.entries.iter().map(|e| e.taxonomy.to_proto(e.model.is_ok() && active.contains(&e.taxonomy.id()))).collect()
    }
}

/// Orders versions such as `2026.2` and `2026.10` by their numeric parts.
fn version_key(version: &str) -> Vec<(u64, String)> {
    version
        .split(['.', '-'])
        .map(|part| match part.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, part.to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GENERAL: &str = include_str!("../../../data/taxonomy/general.toml");

    fn mall(version: &str) -> Taxonomy {
        let text = GENERAL.replace("name = \"general\"", "name = \"mall\"");
        let text = text.replace("version = \"2026.2\"", &format!("version = \"{version}\""));
        Taxonomy::from_toml("mall.toml", &text).unwrap()
    }

    fn example(id: &str, text: &str, business_type: &str, cause: &str) -> Example {
        Example { id: id.to_owned(), text: text.to_owned(), business_type: business_type.into(), cause: cause.into() }
    }

    fn uses(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, t)| ((*k).to_owned(), (*t).to_owned())).collect()
    }

    #[test]
    fn shipped_taxonomies_have_models_and_names_resolve_to_the_highest_version() {
        let corpus = vec![example("m-1", "商场停车收费太贵", "G08", "K02"), example("m-2", "快递丢了", "G03", "K08")];
        let catalogue = Catalogue::shipped()
            .with_own(vec![
                OwnTaxonomy { taxonomy: mall("2026.10"), corpus: Some(("mall-10.jsonl".into(), corpus.clone())) },
                OwnTaxonomy { taxonomy: mall("2026.9"), corpus: None },
            ])
            .unwrap();
        let ids: Vec<String> = catalogue.taxonomies().map(Taxonomy::id).collect();
        assert_eq!(ids, ["banking@2026.2", "general@2026.2", "mall@2026.10", "mall@2026.9"]);
        assert_eq!(catalogue.classifier("banking").unwrap().taxonomy().id(), "banking@2026.2");
        assert_eq!(catalogue.classifier("general@2026.2").unwrap().taxonomy().id(), "general@2026.2");
        assert_eq!(catalogue.classifier("mall").unwrap().taxonomy().id(), "mall@2026.10");
        assert!(catalogue.classifier("mall@2026.9").is_none(), "no corpus, no model");
        assert!(catalogue.classifier("insurance").is_none());

        // Only taxonomies in use and with a model are active.
        let listed = catalogue.to_proto(["banking", "mall@2026.9"]);
        let active: Vec<(String, bool)> =
            listed.iter().map(|t| (format!("{}@{}", t.name, t.version), t.active)).collect();
        assert_eq!(
            active,
            [
                ("banking@2026.2".to_owned(), true),
                ("general@2026.2".to_owned(), false),
                ("mall@2026.10".to_owned(), false),
                ("mall@2026.9".to_owned(), false),
            ]
        );
    }

    #[test]
    fn an_institution_on_a_taxonomy_without_a_model_stops_the_start() {
        let catalogue =
            Catalogue::shipped().with_own(vec![OwnTaxonomy { taxonomy: mall("2026.1"), corpus: None }]).unwrap();
        catalogue
            .check(&uses(&[("regimes.default", "banking"), ("regimes.institutions.a.regime", "general")]))
            .unwrap();
        let error = catalogue.check(&uses(&[("regimes.institutions.mall.taxonomy", "mall")])).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("regimes.institutions.mall.taxonomy: taxonomy mall@2026.1 has no model"),
            "{message}"
        );
        assert!(message.contains("no labelled corpus"), "{message}");
        let error = catalogue.check(&uses(&[("regimes.institutions.x.taxonomy", "insurance")])).unwrap_err();
        assert!(error.to_string().contains("unknown taxonomy \"insurance\"; loaded: banking@2026.2"), "{error}");
    }

    #[test]
    fn own_files_replace_shipped_ones_and_must_fit_their_corpora() {
        let renamed = GENERAL.replace("name = \"商品质量\"", "name = \"商品与服务质量\"");
        let renamed = Taxonomy::from_toml("general.toml", &renamed).unwrap();
        let catalogue = Catalogue::shipped().with_own(vec![OwnTaxonomy { taxonomy: renamed, corpus: None }]).unwrap();
        let general = catalogue.classifier("general").unwrap().taxonomy();
        assert_eq!(general.business_types[0].name, "商品与服务质量", "the replacement is served");
        assert_eq!(catalogue.taxonomies().count(), 2);

        let bad = vec![example("m-1", "信用卡年费", "B02", "C05")];
        let error = Catalogue::shipped()
            .with_own(vec![OwnTaxonomy { taxonomy: mall("1"), corpus: Some(("mall.jsonl".into(), bad)) }])
            .unwrap_err();
        assert!(error.to_string().contains("mall.jsonl, example m-1: business type \"B02\""), "{error}");
        let twice = || OwnTaxonomy { taxonomy: mall("1"), corpus: None };
        assert!(matches!(Catalogue::shipped().with_own(vec![twice(), twice()]), Err(CatalogueError::Duplicate(_))));
    }
}
