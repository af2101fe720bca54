//! Document metadata in an embedded SQLite database inside the index directory
//! (`metadata.sqlite`), and the typed JSON filter compiled to parameterised SQL.
//!
//! Contract:
//! - One table `meta(id TEXT, generation INTEGER, meta TEXT)`, primary key
//!   `(id, generation)`: each write stores a row per document tagged with the index
//!   generation of that write (`IndexWriter::generation()` before commit). The SQLite
//!   transaction commits *before* the index manifest rename, so a crash in between leaves
//!   rows whose generation no snapshot has reached: readers only trust rows with
//!   `generation <= snapshot generation` (and ids live in the snapshot), taking the
//!   newest such row per id, so a re-added id carries its new metadata.
//!   [`MetaStore::prune`] removes rows above the committed generation (lazily, by the next
//!   write).
//! - Metadata is a JSON object of scalars (string, number, bool, null); anything else is
//!   a 400 naming the field.
//! - Filters ([`Filter::parse`]): `{"field", "eq"}`, `{"field", "in": [...]}`,
//!   `{"field", "gt"/"gte"/"lt"/"lte"}`, `{"field", "exists": bool}`, `{"and": [..]}`,
//!   `{"or": [..]}`, `{"not": {..}}`. Field names and values are only ever *bound*
//!   parameters (matched with `json_each`), never SQL text; a malformed filter is a 400
//!   naming the bad part (`filter.and[1].in`).

use crate::error::ApiError;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// File name of the metadata database inside an index directory.
pub const FILE: &str = "metadata.sqlite";

/// Most nested levels a filter may have (bounds recursion on hostile input).
const MAX_DEPTH: usize = 32;

fn sql(e: rusqlite::Error) -> ApiError {
    ApiError::internal(format!("metadata database: {e}"))
}

/// Checks that `meta` is a JSON object of scalars; `field` names it in the error.
pub fn validate(meta: &Value, field: &str) -> Result<(), ApiError> {
    let obj = meta
        .as_object()
        .ok_or_else(|| ApiError::field(field, "must be a JSON object"))?;
    for (k, v) in obj {
        if v.is_array() || v.is_object() {
            return Err(ApiError::field(
                &format!("{field}.{k}"),
                "must be a string, number, bool or null",
            ));
        }
    }
    Ok(())
}

/// The metadata database of one index.
pub struct MetaStore {
    conn: Connection,
}

impl MetaStore {
    /// Opens (creating if absent) `dir/metadata.sqlite`.
    pub fn open(dir: &Path) -> Result<Self, ApiError> {
        let conn = Connection::open(dir.join(FILE)).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS meta (
                 id TEXT NOT NULL, generation INTEGER NOT NULL, meta TEXT NOT NULL,
                 PRIMARY KEY (id, generation));",
        )
        .map_err(sql)?;
        Ok(Self { conn })
    }

    /// Opens `dir/metadata.sqlite` for reading when it exists (`None`: no document of
    /// this index has metadata). Searches use this, so a read never creates files.
    pub fn open_existing(dir: &Path) -> Result<Option<Self>, ApiError> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        // A writer may have created the file and not yet its table.
        let has_table: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        Ok(has_table.then_some(Self { conn }))
    }

    /// Writes `rows` (id, metadata object) tagged `generation` in one committed
    /// transaction (call before the index commit).
    pub fn put(
        &mut self,
        generation: u64,
        rows: &[(String, Map<String, Value>)],
    ) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO meta (id, generation, meta) VALUES (?1, ?2, ?3)")
                .map_err(sql)?;
            for (id, m) in rows {
                let text = Value::Object(m.clone()).to_string();
                st.execute(params![id, generation as i64, text])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Removes rows no committed snapshot can see (generation above `committed`).
    pub fn prune(&mut self, committed: u64) -> Result<usize, ApiError> {
        self.conn
            .execute(
                "DELETE FROM meta WHERE generation > ?1",
                params![committed as i64],
            )
            .map_err(sql)
    }

    /// The visible metadata of `ids` at snapshot generation `generation`
    /// (`None` where the id has no visible row).
    pub fn get(&self, generation: u64, ids: &[String]) -> Result<Vec<Option<Value>>, ApiError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT meta FROM meta WHERE id = ?1 AND generation <= ?2
                 ORDER BY generation DESC LIMIT 1",
            )
            .map_err(sql)?;
        ids.iter()
            .map(|id| {
                let mut rows = st.query(params![id, generation as i64]).map_err(sql)?;
                match rows.next().map_err(sql)? {
                    Some(r) => {
                        let t: String = r.get(0).map_err(sql)?;
                        Ok(serde_json::from_str(&t).ok())
                    }
                    None => Ok(None),
                }
            })
            .collect()
    }

    /// Ids whose visible metadata at `generation` matches `filter` (the caller
    /// intersects with the snapshot's live ids).
    pub fn matching(&self, generation: u64, filter: &Filter) -> Result<HashSet<String>, ApiError> {
        let mut binds: Vec<SqlValue> = vec![SqlValue::Integer(generation as i64)];
        let cond = filter.compile(&mut binds);
        let q = format!(
            "SELECT m.id FROM meta m WHERE m.generation = (SELECT MAX(generation) FROM meta
             WHERE id = m.id AND generation <= ?1) AND ({cond})"
        );
        let mut st = self.conn.prepare(&q).map_err(sql)?;
        let ids = st
            .query_map(params_from_iter(binds.iter()), |r| r.get::<_, String>(0))
            .map_err(sql)?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(sql)?;
        Ok(ids)
    }
}

/// A typed filter expression (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, Value),
    In(String, Vec<Value>),
    Range(String, Vec<(&'static str, Value)>),
    Exists(String, bool),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

const RANGE: [(&str, &str); 4] = [("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")];

impl Filter {
    /// Parses `v`; errors name the bad part relative to `path` (e.g. `filter`).
    pub fn parse(v: &Value, path: &str) -> Result<Filter, ApiError> {
        Self::parse_at(v, path, 0)
    }

    fn parse_at(v: &Value, path: &str, depth: usize) -> Result<Filter, ApiError> {
        if depth > MAX_DEPTH {
            return Err(ApiError::field(
                path,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let o = v
            .as_object()
            .ok_or_else(|| ApiError::field(path, "must be a JSON object"))?;
        for key in ["and", "or"] {
            if let Some(list) = o.get(key) {
                if o.len() != 1 {
                    return Err(ApiError::field(
                        path,
                        format!("`{key}` must be the only key"),
                    ));
                }
                let p = format!("{path}.{key}");
                let items = list
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| ApiError::field(&p, "must be a non-empty array of filters"))?;
                let parts = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Self::parse_at(f, &format!("{p}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(if key == "and" {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                });
            }
        }
        if let Some(inner) = o.get("not") {
            if o.len() != 1 {
                return Err(ApiError::field(path, "`not` must be the only key"));
            }
            let f = Self::parse_at(inner, &format!("{path}.not"), depth + 1)?;
            return Ok(Filter::Not(Box::new(f)));
        }
        let field = match o.get("field") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    &format!("{path}.field"),
                    "must be a non-empty string",
                ))
            }
            None => {
                return Err(ApiError::field(
                    path,
                    "must have `field` (with eq/in/gt/gte/lt/lte/exists) or be and/or/not",
                ))
            }
        };
        let ops: Vec<&String> = o.keys().filter(|k| k.as_str() != "field").collect();
        let scalar = |k: &str| -> Result<Value, ApiError> {
            let x = &o[k];
            if x.is_array() || x.is_object() {
                Err(ApiError::field(
                    &format!("{path}.{k}"),
                    "must be a string, number, bool or null",
                ))
            } else {
                Ok(x.clone())
            }
        };
        match ops.as_slice() {
            [k] if k.as_str() == "eq" => Ok(Filter::Eq(field, scalar("eq")?)),
            [k] if k.as_str() == "exists" => match &o["exists"] {
                Value::Bool(b) => Ok(Filter::Exists(field, *b)),
                _ => Err(ApiError::field(
                    &format!("{path}.exists"),
                    "must be true or false",
                )),
            },
            [k] if k.as_str() == "in" => {
                let p = format!("{path}.in");
                let items = o["in"]
                    .as_array()
                    .ok_or_else(|| ApiError::field(&p, "must be an array of scalars"))?;
                if items.iter().any(|x| x.is_array() || x.is_object()) {
                    return Err(ApiError::field(&p, "must be an array of scalars"));
                }
                Ok(Filter::In(field, items.clone()))
            }
            [] => Err(ApiError::field(
                path,
                "needs an operator: eq, in, gt, gte, lt, lte or exists",
            )),
            ks => {
                let mut bounds = Vec::new();
                for k in ks {
                    let Some((name, op)) = RANGE.iter().find(|(n, _)| *n == k.as_str()) else {
                        return Err(ApiError::field(
                            &format!("{path}.{k}"),
                            "unknown operator (eq, in, gt, gte, lt, lte, exists; only range operators combine)",
                        ));
                    };
                    let b = scalar(name)?;
                    if !(b.is_number() || b.is_string()) {
                        return Err(ApiError::field(
                            &format!("{path}.{name}"),
                            "must be a number or a string",
                        ));
                    }
                    bounds.push((*op, b));
                }
                Ok(Filter::Range(field, bounds))
            }
        }
    }

    /// SQL condition over alias `m`; every field name and value goes into `binds`.
    fn compile(&self, binds: &mut Vec<SqlValue>) -> String {
        fn bind(binds: &mut Vec<SqlValue>, v: SqlValue) -> String {
            binds.push(v);
            format!("?{}", binds.len())
        }
        // One value: a type guard plus a comparison, so 1 never equals "1" or true.
        fn cmp(binds: &mut Vec<SqlValue>, op: &str, v: &Value) -> String {
            match v {
                Value::Null => "j.type = 'null'".into(),
                Value::Bool(b) => {
                    format!("j.type = {}", bind(binds, SqlValue::Text(b.to_string())))
                }
                Value::Number(n) => {
                    let p = bind(binds, SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)));
                    format!("(j.type IN ('integer','real') AND j.value {op} {p})")
                }
                Value::String(s) => {
                    let p = bind(binds, SqlValue::Text(s.clone()));
                    format!("(j.type = 'text' AND j.value {op} {p})")
                }
                _ => "0".into(),
            }
        }
        fn on(binds: &mut Vec<SqlValue>, field: &str, cond: String) -> String {
            let k = bind(binds, SqlValue::Text(field.to_string()));
            format!("EXISTS (SELECT 1 FROM json_each(m.meta) j WHERE j.key = {k} AND ({cond}))")
        }
        match self {
            Filter::Eq(f, v) => {
                let c = cmp(binds, "=", v);
                on(binds, f, c)
            }
            Filter::In(f, vs) if vs.is_empty() => {
                let _ = f;
                "0".into()
            }
            Filter::In(f, vs) => {
                let c = vs
                    .iter()
                    .map(|v| cmp(binds, "=", v))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                on(binds, f, c)
            }
            Filter::Range(f, bs) => {
                let c = bs
                    .iter()
                    .map(|(op, v)| cmp(binds, op, v))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                on(binds, f, c)
            }
            Filter::Exists(f, yes) => {
                let c = on(binds, f, "j.type <> 'null'".into());
                if *yes {
                    c
                } else {
                    format!("NOT {c}")
                }
            }
            Filter::And(fs) => fs
                .iter()
                .map(|f| format!("({})", f.compile(binds)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Filter::Or(fs) => fs
                .iter()
                .map(|f| format!("({})", f.compile(binds)))
                .collect::<Vec<_>>()
                .join(" OR "),
            Filter::Not(f) => format!("NOT ({})", f.compile(binds)),
        }
    }
}

/// Groups `(id, metadata)` for [`MetaStore::put`], dropping ids without metadata.
pub fn rows(
    items: impl IntoIterator<Item = (String, Option<Value>)>,
) -> Vec<(String, Map<String, Value>)> {
    let mut out: HashMap<String, Map<String, Value>> = HashMap::new();
    for (id, m) in items {
        if let Some(Value::Object(o)) = m {
            out.insert(id, o);
        }
    }
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
