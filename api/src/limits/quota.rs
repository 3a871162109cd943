//! Monthly character quotas and the custom-voice allowance, kept in the tenant-owned `usage`
//! table.
//!
//! A generation costs the Unicode scalar values (Rust `char`s) of its text as spoken: after
//! the API trims leading and trailing whitespace, which is also what is stored and what
//! `x-character-count` reports. The characters are reserved in the database before the
//! synthesis ([`reserve`]: one conditional `UPDATE`, so concurrent requests on any replica
//! never overspend) and given back when it fails ([`release`]).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::plans::Plan;
use crate::{
    entities::{usage, voice},
    error::ApiError,
    tenant::{TenantContext, TenantRegistry, scoped::ScopedDb},
};

/// What a text costs: its Unicode scalar values.
pub fn characters(text: &str) -> i64 {
    text.chars().count() as i64
}

/// A calendar month in UTC: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    pub fn containing(now: DateTime<Utc>) -> Period {
        let start = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or_default();
        let end = if now.month() == 12 {
            NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
        }
        .unwrap_or_default();
        Period { start, end }
    }

    pub fn current() -> Period {
        Period::containing(Utc::now())
    }
}

/// Characters reserved for one generation; give them back with [`release`] if it fails.
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    pub period_start: NaiveDate,
    pub characters: i64,
}

/// Reserves `characters` of this month's allowance in `db`'s transaction (committed by the
/// caller before synthesizing), or 402 `quota_exceeded` with what is left.
pub async fn reserve(db: &ScopedDb, plan: &Plan, characters: i64) -> Result<Reservation, ApiError> {
    let period = Period::current();
    match db
        .reserve_characters(period.start, characters, plan.characters_per_month)
        .await?
    {
        Ok(_) => Ok(Reservation {
            period_start: period.start,
            characters,
        }),
        Err(used) => Err(ApiError::QuotaExceeded {
            requested: characters,
            remaining: (plan.characters_per_month - used).max(0),
        }),
    }
}

/// Gives a reservation back (its own transaction). A failure is logged: the characters stay
/// spent, which errs on the side of the workspace's budget, never of overspending.
pub async fn release(tenants: &TenantRegistry, ctx: &TenantContext, reservation: Reservation) {
    let released = async {
        let db = ScopedDb::begin(tenants, ctx).await?;
        db.release_characters(reservation.period_start, reservation.characters)
            .await?;
        db.commit().await
    };
    if let Err(error) = released.await {
        tracing::warn!(tenant = %ctx.tenant_id, %error, characters = reservation.characters,
            "could not give back the characters of a failed generation");
    }
}

/// Characters used in the month starting `period_start`.
pub async fn characters_used(db: &ScopedDb, period_start: NaiveDate) -> Result<i64, ApiError> {
    let row = db
        .one(usage::Entity::find().filter(usage::Column::PeriodStart.eq(period_start)))
        .await?;
    Ok(row.map_or(0, |row| row.characters_used))
}

/// The workspace's custom voices (system voices are shared and do not count).
pub async fn custom_voices(db: &ScopedDb) -> Result<i64, ApiError> {
    let count = db
        .count(voice::Entity::find().filter(voice::Column::TenantId.is_not_null()))
        .await?;
    Ok(count as i64)
}

/// 402 `plan_limit_reached` when the workspace already has the custom voices its plan allows.
/// Run it in the transaction that inserts the voice: it first locks the workspace's usage row
/// of the month, so two uploads at once cannot both take the last place.
pub async fn check_custom_voice_allowance(db: &ScopedDb, plan: &Plan) -> Result<(), ApiError> {
    db.reserve_characters(Period::current().start, 0, i64::MAX)
        .await?
        .ok();
    let have = custom_voices(db).await?;
    if have >= plan.max_custom_voices {
        return Err(ApiError::PlanLimitReached(format!(
            "the {} plan allows {} custom voices and this workspace has {have}; delete one or change plans",
            plan.name, plan.max_custom_voices
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        let nov = Period::containing(at(2026, 11, 30, 23));
        assert_eq!(nov.start, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(nov.end, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        let dec = Period::containing(at(2026, 12, 31, 23));
        assert_eq!(dec.end, NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
    }

    #[test]
    fn characters_are_unicode_scalar_values() {
        assert_eq!(characters("Hello"), 5);
        assert_eq!(characters("Grüße"), 5);
        assert_eq!(characters("日本語"), 3);
        assert_eq!(characters("👍🏽"), 2); // a thumbs-up and a skin-tone modifier
    }
}
