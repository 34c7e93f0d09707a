//! The brute-force counters as rows every replica sees: a name locked through one replica is
//! locked on all, and N replicas do not give N times the guesses.
//!
//! Rows are bounded as the in-memory tables are: expired rows go as new ones come, and a table
//! holding [`crate::db::COUNTERS_KEPT`] rows of a kind makes room by dropping the open entries
//! with the fewest failures; locked entries stay until their window ends.

use postgres::GenericClient;

use super::{Postgres, classify};
use crate::db::{COUNTERS_KEPT, CounterKey, Counters, StoreError};

/// Expired rows removed per charge (enough to keep up with any rate of new ones).
const PRUNE_BATCH: i64 = 64;

impl Counters for Postgres {
    fn charge(
        &self,
        keys: &[(CounterKey, u32)],
        check: bool,
        max: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<Vec<i64>, u64>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        let expired = now_ms - window_ms;
        tx.execute(
            "DELETE FROM limiter WHERE ctid IN
                 (SELECT ctid FROM limiter WHERE since <= $1::BIGINT LIMIT $2::BIGINT)",
            &[&expired, &PRUNE_BATCH],
        )?;
        let max = i64::from(max);
        let mut wait: Option<u64> = None;
        // Keys in one order, so two attempts on the same names cannot deadlock.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| (keys[i].0.kind as i16, keys[i].0.bytes));
        let mut starts = vec![0i64; keys.len()];
        for i in order {
            let (key, n) = &keys[i];
            let row = tx.query_one(
                "INSERT INTO limiter AS l (kind, key, failures, since) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, key) DO UPDATE SET
                     failures = CASE WHEN l.since <= $5 THEN excluded.failures
                                     ELSE l.failures + excluded.failures END,
                     since = CASE WHEN l.since <= $5 THEN excluded.since ELSE l.since END
                 RETURNING failures::BIGINT, since, (xmax = 0) AS inserted",
                &[
                    &(key.kind as i16),
                    &&key.bytes[..],
                    &i32::try_from(*n).unwrap_or(i32::MAX),
                    &now_ms,
                    &expired,
                ],
            )?;
            let failures: i64 = row.get(0);
            let start: i64 = row.get(1);
            let inserted: bool = row.get(2);
            let before = failures - i64::from(*n);
            if check && before >= max {
                let left = window_ms - (now_ms - start);
                let secs = u64::try_from(left.max(1000) / 1000).unwrap_or(1);
                wait = Some(wait.map_or(secs, |w| w.max(secs)));
            }
            if inserted
                && let Err(secs) = make_room(&mut tx, key.kind as i16, max, now_ms, window_ms)?
            {
                wait = Some(wait.map_or(secs, |w| w.max(secs)));
            }
            starts[i] = start;
        }
        if let Some(wait) = wait {
            // Nothing is charged when anything is locked.
            tx.rollback().map_err(classify)?;
            return Ok(Err(wait));
        }
        tx.commit().map_err(classify)?;
        Ok(Ok(starts))
    }

    fn locked(
        &self,
        key: CounterKey,
        max: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.client.query_opt(
            "SELECT since FROM limiter WHERE kind = $1 AND key = $2 AND failures >= $3 AND since > $4",
            &[
                &(key.kind as i16),
                &&key.bytes[..],
                &i32::try_from(max).unwrap_or(i32::MAX),
                &(now_ms - window_ms),
            ],
        )?;
        Ok(row.map(|r| {
            let start: i64 = r.get(0);
            u64::try_from((window_ms - (now_ms - start)).max(1000) / 1000).unwrap_or(1)
        }))
    }

    fn uncharge(&self, key: CounterKey, since: i64, n: u32) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        let args: [&(dyn postgres::types::ToSql + Sync); 4] = [
            &(key.kind as i16),
            &&key.bytes[..],
            &since,
            &i32::try_from(n).unwrap_or(i32::MAX),
        ];
        tx.execute(
            "UPDATE limiter SET failures = failures - $4
             WHERE kind = $1 AND key = $2 AND since = $3",
            &args,
        )?;
        tx.execute(
            "DELETE FROM limiter WHERE kind = $1 AND key = $2 AND since = $3 AND failures <= 0",
            &args[..3],
        )?;
        tx.commit().map_err(classify)
    }

    fn remove(&self, keys: &[CounterKey]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        for key in keys {
            conn.client.execute(
                "DELETE FROM limiter WHERE kind = $1 AND key = $2",
                &[&(key.kind as i16), &&key.bytes[..]],
            )?;
        }
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.conn()?.client.execute("DELETE FROM limiter", &[])?;
        Ok(())
    }

    fn counted(&self) -> Result<(u64, u64), StoreError> {
        let row = self.conn()?.client.query_one(
            "SELECT count(*) FILTER (WHERE kind = 0), count(*) FILTER (WHERE kind = 1) FROM limiter",
            &[],
        )?;
        let (names, addresses): (i64, i64) = (row.get(0), row.get(1));
        Ok((names as u64, addresses as u64))
    }
}

/// After a new row: when the kind holds more than [`COUNTERS_KEPT`] rows, expired ones go,
/// then a tenth of the open ones with the fewest failures (oldest first). Fails with the
/// seconds until the first lock ends when every row is locked.
fn make_room(
    tx: &mut impl GenericClient,
    kind: i16,
    max: i64,
    now_ms: i64,
    window_ms: i64,
) -> Result<Result<(), u64>, StoreError> {
    let kept = i64::try_from(COUNTERS_KEPT).unwrap_or(i64::MAX);
    let full: bool = tx
        .query_one(
            "SELECT count(*) > $2::BIGINT FROM (SELECT 1 FROM limiter WHERE kind = $1 LIMIT $2::BIGINT + 1) t",
            &[&kind, &kept],
        )?
        .get(0);
    if !full {
        return Ok(Ok(()));
    }
    tx.execute(
        "DELETE FROM limiter WHERE kind = $1 AND since <= $2",
        &[&kind, &(now_ms - window_ms)],
    )?;
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    let dropped = tx.execute(
        "DELETE FROM limiter WHERE ctid IN
             (SELECT ctid FROM limiter WHERE kind = $1 AND failures < $2
              ORDER BY failures, since LIMIT $3::BIGINT)",
        &[&kind, &max, &(kept / 10).max(1)],
    )?;
    if dropped > 0 {
        return Ok(Ok(()));
    }
    let first_end: Option<i64> = tx
        .query_one("SELECT min(since) FROM limiter WHERE kind = $1", &[&kind])?
        .get(0);
    let left = first_end.map_or(window_ms, |s| window_ms - (now_ms - s));
    log::warn!("brute-force limiter: every entry is locked out; new names wait");
    Ok(Err(u64::try_from(left.max(1000) / 1000).unwrap_or(1)))
}
