//! The plan catalogue: what each plan allows (request rate, characters a month, custom
//! voices), read once at start from `RESONANCE_PLANS_FILE`, or the built-in generous one.
//!
//! ```json
//! { "default": "free",
//!   "plans": {
//!     "free": { "requests_per_second": 5, "burst": 20, "characters_per_month": 10000,
//!               "max_custom_voices": 1, "features": [] },
//!     "pro":  { "requests_per_second": 50, "burst": 200, "characters_per_month": 1000000,
//!               "max_custom_voices": 20, "features": ["cloning"] } } }
//! ```
//!
//! A request's plan is the token's `pla` claim without its `o:`/`u:` prefix when the catalogue
//! knows it, else `default` (see [`super::Limits::plan_for`]).

use std::{collections::HashMap, path::Path, sync::Arc};

use actix_web::http::header::HeaderValue;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One plan's limits, as the catalogue file writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    requests_per_second: u32,
    burst: u32,
    characters_per_month: i64,
    max_custom_voices: i64,
    #[serde(default)]
    features: Vec<String>,
    /// The Polar products whose subscription grants this plan (see `crate::billing`).
    #[serde(default)]
    polar_product_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    default: String,
    plans: HashMap<String, PlanEntry>,
}

/// A plan and what it allows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Plan {
    /// The plan's name in the catalogue (`free`, `pro`, …).
    #[schema(example = "free")]
    pub name: String,
    /// Sustained requests per second for the whole workspace (every token and client of it).
    pub requests_per_second: u32,
    /// Requests the workspace may make at once before the rate applies.
    pub burst: u32,
    /// Characters of generated speech per calendar month (UTC).
    pub characters_per_month: i64,
    /// Custom voices the workspace may keep.
    pub max_custom_voices: i64,
    /// Features the plan includes.
    pub features: Vec<String>,
    /// The Polar products that grant this plan (a checkout offers them all).
    #[serde(skip)]
    pub polar_product_ids: Vec<String>,
    /// Position in the catalogue (the in-process rate limiter of this plan).
    #[serde(skip)]
    pub(super) index: usize,
    /// `RateLimit-Policy` of this plan, built once.
    #[serde(skip)]
    pub(super) policy: HeaderValue,
}

impl Plan {
    /// Seconds the burst takes to refill at the plan's rate (the policy's window).
    pub fn window_secs(&self) -> u64 {
        u64::from(self.burst).div_ceil(u64::from(self.requests_per_second))
    }

    /// Microseconds between two requests at the sustained rate.
    pub fn emission_interval_us(&self) -> u64 {
        1_000_000 / u64::from(self.requests_per_second)
    }
}

/// Every plan, and the one requests fall back to.
#[derive(Debug)]
pub struct PlanCatalogue {
    plans: Vec<Arc<Plan>>,
    by_name: HashMap<String, usize>,
    /// Polar product id → plan.
    by_product: HashMap<String, usize>,
    default: usize,
}

/// The catalogue without a file: generous enough that development (and a load test or a
/// benchmark from one workspace) is never blocked.
const BUILT_IN: &str = r#"{
  "default": "standard",
  "plans": {
    "standard": { "requests_per_second": 1000000, "burst": 1000000,
                  "characters_per_month": 100000000, "max_custom_voices": 1000, "features": [] }
  }
}"#;

impl PlanCatalogue {
    /// The catalogue of `file`, or the built-in one. The error is one line naming the problem.
    pub fn load(file: Option<&Path>) -> Result<PlanCatalogue, String> {
        match file {
            None => PlanCatalogue::parse(BUILT_IN),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                PlanCatalogue::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }

    /// Parses and checks a catalogue document.
    pub fn parse(text: &str) -> Result<PlanCatalogue, String> {
        let file: CatalogueFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut names: Vec<&String> = file.plans.keys().collect();
        names.sort();
        let mut plans = Vec::with_capacity(names.len());
        let mut by_name = HashMap::with_capacity(names.len());
        let mut by_product = HashMap::new();
        for name in names {
            let entry = &file.plans[name];
            // The name is sent as a structured-field string in RateLimit headers.
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                return Err(format!(
                    "plan name {name:?} must be 1 to 64 printable ASCII characters without quotes or backslashes"
                ));
            }
            let check = |ok: bool, what: &str| {
                if ok {
                    Ok(())
                } else {
                    Err(format!("plan {name:?}: {what}"))
                }
            };
            check(
                (1..=1_000_000).contains(&entry.requests_per_second),
                "requests_per_second must be between 1 and 1000000",
            )?;
            check(
                (1..=10_000_000).contains(&entry.burst),
                "burst must be between 1 and 10000000",
            )?;
            check(
                entry.characters_per_month >= 0,
                "characters_per_month must not be negative",
            )?;
            check(
                entry.max_custom_voices >= 0,
                "max_custom_voices must not be negative",
            )?;
            let mut plan = Plan {
                name: name.clone(),
                requests_per_second: entry.requests_per_second,
                burst: entry.burst,
                characters_per_month: entry.characters_per_month,
                max_custom_voices: entry.max_custom_voices,
                features: entry.features.clone(),
                polar_product_ids: entry.polar_product_ids.clone(),
                index: plans.len(),
                policy: HeaderValue::from_static(""),
            };
            plan.policy = HeaderValue::from_str(&format!(
                "\"{}\";q={};w={}",
                plan.name,
                plan.burst,
                plan.window_secs()
            ))
            .map_err(|e| format!("plan {name:?}: {e}"))?;
            for product in &entry.polar_product_ids {
                check(
                    !product.is_empty() && product.len() <= 64,
                    "polar_product_ids must be 1 to 64 characters each",
                )?;
                // A subscription's product must name one plan, or its plan is a guess.
                if let Some(&other) = by_product.get(product) {
                    let other: &Arc<Plan> = &plans[other];
                    return Err(format!(
                        "Polar product {product:?} is listed by both plan {:?} and plan {name:?}",
                        other.name
                    ));
                }
                by_product.insert(product.clone(), plans.len());
            }
            by_name.insert(name.clone(), plans.len());
            plans.push(Arc::new(plan));
        }
        let default = *by_name
            .get(&file.default)
            .ok_or_else(|| format!("the default plan {:?} is not among the plans", file.default))?;
        Ok(PlanCatalogue {
            plans,
            by_name,
            by_product,
            default,
        })
    }

    pub fn default_plan(&self) -> &Arc<Plan> {
        &self.plans[self.default]
    }

    /// The plan a `pla` claim names (`o:pro`, `u:free`, or a bare name), if the catalogue
    /// has it.
    pub fn for_claim(&self, claim: &str) -> Option<&Arc<Plan>> {
        let name = claim
            .strip_prefix("o:")
            .or_else(|| claim.strip_prefix("u:"))
            .unwrap_or(claim);
        self.by_name.get(name).map(|&i| &self.plans[i])
    }

    /// The plan by its exact name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Plan>> {
        self.by_name.get(name).map(|&i| &self.plans[i])
    }

    /// The plan a subscription to Polar product `product_id` grants.
    pub fn for_polar_product(&self, product_id: &str) -> Option<&Arc<Plan>> {
        self.by_product.get(product_id).map(|&i| &self.plans[i])
    }

    pub fn get(&self, index: usize) -> Option<&Arc<Plan>> {
        self.plans.get(index)
    }

    pub fn plans(&self) -> &[Arc<Plan>] {
        &self.plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalogue_is_generous() {
        let catalogue = PlanCatalogue::load(None).unwrap();
        let plan = catalogue.default_plan();
        assert!(plan.requests_per_second >= 1_000_000);
        assert_eq!(plan.policy, "\"standard\";q=1000000;w=1");
    }

    #[test]
    fn claims_name_plans_with_or_without_their_prefix() {
        let catalogue = PlanCatalogue::parse(
            r#"{"default":"free","plans":{
                "free":{"requests_per_second":5,"burst":20,"characters_per_month":10000,"max_custom_voices":1,"features":[]},
                "pro":{"requests_per_second":50,"burst":100,"characters_per_month":1000000,"max_custom_voices":10,
                       "polar_product_ids":["prod_monthly","prod_yearly"]}}}"#,
        )
        .unwrap();
        assert_eq!(catalogue.for_claim("o:pro").unwrap().name, "pro");
        assert_eq!(catalogue.for_claim("u:free").unwrap().name, "free");
        assert_eq!(catalogue.for_claim("pro").unwrap().name, "pro");
        assert!(catalogue.for_claim("o:enterprise").is_none());
        assert_eq!(
            catalogue.for_polar_product("prod_yearly").unwrap().name,
            "pro"
        );
        assert!(catalogue.for_polar_product("prod_other").is_none());
        assert_eq!(
            catalogue.by_name("pro").unwrap().polar_product_ids,
            ["prod_monthly", "prod_yearly"]
        );
        assert_eq!(catalogue.default_plan().name, "free");
        assert_eq!(catalogue.default_plan().policy, "\"free\";q=20;w=4");
    }

    #[test]
    fn bad_catalogues_name_the_problem() {
        let err = |text: &str| PlanCatalogue::parse(text).unwrap_err();
        assert!(err("{").contains("EOF"), "{}", err("{"));
        assert_eq!(
            err(r#"{"default":"gold","plans":{}}"#),
            "the default plan \"gold\" is not among the plans"
        );
        let zero = r#"{"default":"a","plans":{"a":{"requests_per_second":0,"burst":1,"characters_per_month":1,"max_custom_voices":1}}}"#;
        assert_eq!(
            err(zero),
            "plan \"a\": requests_per_second must be between 1 and 1000000"
        );
        let shared = r#"{"default":"a","plans":{
            "a":{"requests_per_second":1,"burst":1,"characters_per_month":1,"max_custom_voices":1,"polar_product_ids":["p1"]},
            "b":{"requests_per_second":1,"burst":1,"characters_per_month":1,"max_custom_voices":1,"polar_product_ids":["p1"]}}}"#;
        assert_eq!(
            err(shared),
            "Polar product \"p1\" is listed by both plan \"a\" and plan \"b\""
        );
        let unknown = r#"{"default":"a","plans":{"a":{"rps":1}}}"#;
        assert!(
            err(unknown).contains("unknown field `rps`"),
            "{}",
            err(unknown)
        );
    }
}
