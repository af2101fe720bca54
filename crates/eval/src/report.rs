//! [`Report`]: per-query metric values and their means, and its JSON form.
//!
//! Contract: a report holds the metrics in the order they were requested, the value of
//! each metric for every evaluated query, and the arithmetic mean over those queries.
//! JSON (`serde::Serialize`, [`Report::to_json`]) is an object whose first keys are the
//! metric names with their means (`"ndcg@10": 0.6451`), then `"num_queries"`, then — when
//! asked for — `"per_query": {qid: {"ndcg@10": ..}}`. [`Report::from_json`] reads that
//! back (per-query part optional; keys that are not metric names are ignored, so callers
//! may add metadata); [`Report::write_json`] writes it atomically.

use crate::error::{EvalError, Result};
use crate::metric::Metric;
use colzero_core::fsutil::atomic_write_bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;
use std::path::Path;

/// Metric values per query and their means.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    metrics: Vec<Metric>,
    mean: Vec<f64>,
    num_queries: usize,
    per_query: BTreeMap<String, Vec<f64>>,
}

impl Report {
    /// Builds a report from per-query values (each in `metrics` order); computes means.
    pub fn new(metrics: Vec<Metric>, per_query: BTreeMap<String, Vec<f64>>) -> Self {
        let n = per_query.len();
        let mut mean = vec![0.0; metrics.len()];
        for v in per_query.values() {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += x;
            }
        }
        if n > 0 {
            mean.iter_mut().for_each(|m| *m /= n as f64);
        }
        Self {
            metrics,
            mean,
            num_queries: n,
            per_query,
        }
    }

    /// The metrics, in requested order.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Number of queries averaged.
    pub fn num_queries(&self) -> usize {
        self.num_queries
    }

    /// Mean of `metric` over the evaluated queries.
    pub fn get(&self, metric: &Metric) -> Option<f64> {
        let i = self.metrics.iter().position(|m| m == metric)?;
        Some(self.mean[i])
    }

    /// Mean of the metric named `name` (any spelling [`Metric::parse`] accepts).
    pub fn get_name(&self, name: &str) -> Option<f64> {
        self.get(&Metric::parse(name).ok()?)
    }

    /// `(metric, mean)` pairs in requested order.
    pub fn means(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        self.metrics.iter().copied().zip(self.mean.iter().copied())
    }

    /// Ids of the evaluated queries (sorted), when the per-query part is present.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.per_query.keys().map(String::as_str)
    }

    /// Value of `metric` for `query`.
    pub fn query(&self, query: &str, metric: &Metric) -> Option<f64> {
        let i = self.metrics.iter().position(|m| m == metric)?;
        self.per_query.get(query).map(|v| v[i])
    }

    /// The JSON form (see module docs), with or without the per-query part.
    pub fn to_json(&self, per_query: bool) -> serde_json::Value {
        serde_json::to_value(JsonView {
            report: self,
            per_query,
        })
        .expect("a report always serialises")
    }

    /// Pretty JSON text, metric means first.
    pub fn to_json_string(&self, per_query: bool) -> String {
        serde_json::to_string_pretty(&JsonView {
            report: self,
            per_query,
        })
        .expect("a report always serialises")
    }

    /// Writes the JSON form to `path` atomically.
    pub fn write_json(&self, path: &Path, per_query: bool) -> Result<()> {
        let mut s = self.to_json_string(per_query);
        s.push('\n');
        atomic_write_bytes(path, s.as_bytes())?;
        Ok(())
    }

    /// Reads a report from its JSON form. Without `per_query`, the report keeps the
    /// means and `num_queries` but has no per-query values.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |r: String| EvalError::Invalid(format!("not a colzero metrics report: {r}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let mut metrics = Vec::new();
        let mut mean = Vec::new();
        let mut num_queries = None;
        let mut per_query = BTreeMap::new();
        for (k, val) in obj {
            match k.as_str() {
                "num_queries" => num_queries = val.as_u64().map(|n| n as usize),
                "per_query" => {
                    let qs = val.as_object().ok_or_else(|| bad("per_query".into()))?;
                    for (q, mv) in qs {
                        per_query.insert(q.clone(), mv.clone());
                    }
                }
                _ => {
                    // other keys (metadata a caller added) are not metrics: skip them
                    if let (Ok(m), Some(x)) = (Metric::parse(k), val.as_f64()) {
                        metrics.push(m);
                        mean.push(x);
                    }
                }
            }
        }
        let num_queries = num_queries.ok_or_else(|| bad("no num_queries".into()))?;
        let per_query = per_query
            .into_iter()
            .map(|(q, mv)| {
                let vals = metrics
                    .iter()
                    .map(|m| mv.get(m.name()).and_then(|x| x.as_f64()))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| bad(format!("query `{q}` lacks a metric")))?;
                Ok((q, vals))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Self {
            metrics,
            mean,
            num_queries,
            per_query,
        })
    }
}

struct JsonView<'a> {
    report: &'a Report,
    per_query: bool,
}

struct QueryValues<'a>(&'a [Metric], &'a [f64]);

impl Serialize for QueryValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (m, v) in self.0.iter().zip(self.1) {
            map.serialize_entry(&m.name(), v)?;
        }
        map.end()
    }
}

struct PerQuery<'a>(&'a Report);

impl Serialize for PerQuery<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(Some(r.per_query.len()))?;
        for (q, v) in &r.per_query {
            map.serialize_entry(q, &QueryValues(&r.metrics, v))?;
        }
        map.end()
    }
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.report;
        let mut map = s.serialize_map(None)?;
        for (m, v) in r.means() {
            map.serialize_entry(&m.name(), &v)?;
        }
        map.serialize_entry("num_queries", &r.num_queries)?;
        if self.per_query {
            map.serialize_entry("per_query", &PerQuery(r))?;
        }
        map.end()
    }
}

impl Serialize for Report {
    /// The full JSON form, per-query part included.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        JsonView {
            report: self,
            per_query: true,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let ms = Metric::parse_list("ndcg@10,recall@100").unwrap();
        let mut pq = BTreeMap::new();
        pq.insert("q2".to_string(), vec![0.5, 1.0]);
        pq.insert("q1".to_string(), vec![0.25, 0.0]);
        Report::new(ms, pq)
    }

    #[test]
    fn means_lookups_and_json_round_trip() {
        let r = report();
        assert_eq!(r.get_name("ndcg@10"), Some(0.375));
        assert_eq!(r.get_name("recall_100"), Some(0.5));
        assert_eq!(
            r.query("q1", &Metric::parse("ndcg@10").unwrap()),
            Some(0.25)
        );
        let s = r.to_json_string(true);
        assert!(s.find("\"ndcg@10\"").unwrap() < s.find("\"recall@100\"").unwrap());
        assert!(s.find("\"recall@100\"").unwrap() < s.find("\"num_queries\"").unwrap());
        assert_eq!(Report::from_json(&s).unwrap(), r);
        let v = r.to_json(false);
        assert_eq!(v["ndcg@10"], 0.375);
        assert_eq!(v["num_queries"], 2);
        assert!(v.get("per_query").is_none());
        let back = Report::from_json(&v.to_string()).unwrap();
        assert_eq!(back.get_name("recall@100"), Some(0.5));
        assert_eq!(back.num_queries(), 2);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["per_query"]["q2"]["recall@100"],
            1.0
        );
        let extra =
            Report::from_json("{\"model\": \"m\", \"p@5\": 0.5, \"num_queries\": 1}").unwrap();
        assert_eq!(extra.metrics(), [Metric::parse("p@5").unwrap()]);
        assert!(Report::from_json("{\"p@5\": 0.5}").is_err());
        assert!(Report::from_json("[1]").is_err());
    }

    #[test]
    fn write_json_is_atomic_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out/metrics.json");
        report().write_json(&p, false).unwrap();
        let back = Report::from_json(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back.get_name("ndcg@10"), Some(0.375));
    }
}
