//! Per-org leases: at most one worker extracts an org at a time, and a dead worker's lease
//! expires.
//!
//! A lease is a log of generations, `_sfetl/leases/org=<slug>/<generation>.json`, each written
//! with a create-only put (S3's `If-None-Match: *`, which every object store sfetl opens
//! supports; no compare-and-swap on an existing object is needed). The newest generation says who
//! holds the org and until when. Taking a free or expired lease, renewing it and releasing it all
//! write the next generation; when two workers race for the same one, the store lets one create
//! it and refuses the other. A holder whose renewal is refused has lost the org.
//!
//! Expiry is judged by the clocks of the workers: keep them in sync (NTP), and the lease well
//! above their skew. A lease is only there to spare the org's API quota a second extraction;
//! what keeps the lake consistent is the manifest's own create-only commit.

use crate::{Error, Lake, Result};
use futures_util::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const LEASES: &str = "_sfetl/leases";

/// One generation of an org's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    /// UTC milliseconds.
    pub expires_at: i64,
    /// Given back: the org is free whatever `expires_at` says.
    #[serde(default)]
    pub released: bool,
}

impl LeaseRecord {
    /// Whether its holder still holds the org now: neither given back nor expired.
    pub fn is_held(&self) -> bool {
        !self.released && self.expires_at > chrono::Utc::now().timestamp_millis()
    }
}

/// A lease this worker holds on an org.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    org: String,
    holder: String,
    ttl: Duration,
    generation: u64,
}

impl Lake {
    fn lease_path(&self, org: &str, generation: u64) -> String {
        format!("{LEASES}/org={org}/{generation:020}.json")
    }

    /// Who holds the org's lease now (`None`: nobody; expired and released leases are `None`).
    pub async fn lease_holder(&self, org: &str) -> Result<Option<LeaseRecord>> {
        let newest = self.newest_lease(org).await?;
        Ok(newest.map(|(_, record)| record).filter(LeaseRecord::is_held))
    }

    /// The org's newest lease generation and its record (`None`: never leased).
    async fn newest_lease(&self, org: &str) -> Result<Option<(u64, LeaseRecord)>> {
        let dir = format!("{LEASES}/org={org}");
        let listed: Vec<_> = self
            .store
            .list(Some(&self.path(&dir)))
            .try_collect()
            .await
            .map_err(Error::store(format!("listing {}", self.url_of(&dir))))?;
        let newest =
            listed.iter().filter_map(|meta| meta.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok()).max();
        let Some(generation) = newest else { return Ok(None) };
        let relative = self.lease_path(org, generation);
        let what = || format!("reading {}", self.url_of(&relative));
        let bytes = match self.store.get(&self.path(&relative)).await {
            Ok(got) => got.bytes().await.map_err(Error::store(what()))?,
            // Removed since the listing by a holder cleaning up: a newer generation exists.
            Err(object_store::Error::NotFound { .. }) => return Box::pin(self.newest_lease(org)).await,
            Err(source) => return Err(Error::Store { what: what(), source }),
        };
        let record = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Unreadable { path: self.url_of(&relative), detail: e.to_string() })?;
        Ok(Some((generation, record)))
    }

    /// Writes a generation, create-only: `Ok(false)` when another worker wrote it first.
    async fn write_generation(&self, org: &str, generation: u64, record: &LeaseRecord) -> Result<bool> {
        let relative = self.lease_path(org, generation);
        let json = serde_json::to_vec(record)
            .map_err(|e| Error::Unreadable { path: relative.clone(), detail: e.to_string() })?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&self.path(&relative), json.into(), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(Error::Store { what: format!("writing {}", self.url_of(&relative)), source }),
        }
    }

    /// Takes the org's lease for `ttl`, or says who holds it ([`Error::Held`]).
    pub async fn acquire(&self, org: &str, holder: &str, ttl: Duration) -> Result<Lease> {
        let newest = self.newest_lease(org).await?;
        if let Some((_, record)) = newest.as_ref().filter(|(_, r)| r.is_held()) {
            return Err(held(org, record));
        }
        let generation = newest.map_or(1, |(generation, _)| generation + 1);
        let record = LeaseRecord { holder: holder.to_string(), expires_at: expiry(ttl), released: false };
        if !self.write_generation(org, generation, &record).await? {
            // Another worker took it between our read and our write: name it.
            let holder = self.newest_lease(org).await?.map(|(_, r)| r);
            return Err(held(org, &holder.unwrap_or(record)));
        }
        let lease = Lease { lake: self.clone(), org: org.to_string(), holder: holder.to_string(), ttl, generation };
        lease.forget_older().await;
        Ok(lease)
    }
}

fn held(org: &str, record: &LeaseRecord) -> Error {
    let until = chrono::DateTime::from_timestamp_millis(record.expires_at)
        .map_or_else(|| record.expires_at.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    Error::Held { org: org.to_string(), holder: record.holder.clone(), until }
}

fn expiry(ttl: Duration) -> i64 {
    chrono::Utc::now().timestamp_millis().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

impl Lease {
    pub fn org(&self) -> &str {
        &self.org
    }

    /// How long a generation lasts: renew well within it.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Extends the lease by its ttl from now; [`Error::LeaseLost`] when another worker took it
    /// over after it expired.
    pub async fn renew(&mut self) -> Result<()> {
        let record = LeaseRecord { holder: self.holder.clone(), expires_at: expiry(self.ttl), released: false };
        if !self.lake.write_generation(&self.org, self.generation + 1, &record).await? {
            return Err(Error::LeaseLost { org: self.org.clone() });
        }
        self.generation += 1;
        self.forget_older().await;
        Ok(())
    }

    /// Gives the org back at once (the next worker need not wait for the expiry).
    pub async fn release(self) -> Result<()> {
        let record = LeaseRecord { holder: self.holder.clone(), expires_at: 0, released: true };
        if self.lake.write_generation(&self.org, self.generation + 1, &record).await? {
            let released = Lease { generation: self.generation + 1, ..self };
            released.forget_older().await;
        }
        Ok(())
    }

    /// Removes the generations before this one (best effort: they are never read again, since
    /// readers take the newest).
    async fn forget_older(&self) {
        for generation in self.generation.saturating_sub(3).max(1)..self.generation {
            let path = self.lake.path(&self.lake.lease_path(&self.org, generation));
            let _ = self.lake.store.delete(&path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let lake = Lake::open(&format!("file://{}", dir.path().display())).unwrap_or_else(|e| panic!("{e}"));
        (dir, lake)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() -> Result<()> {
        let (_dir, lake) = lake();
        let minute = Duration::from_secs(60);
        let mut first = lake.acquire("acme", "worker-a", minute).await?;
        let refused = lake.acquire("acme", "worker-b", minute).await.err().map(|e| e.to_string());
        assert!(refused.as_deref().is_some_and(|e| e.contains("worker-a")), "{refused:?}");
        // Another org is independent.
        lake.acquire("globex", "worker-b", minute).await?;
        first.renew().await?;
        first.release().await?;
        let second = lake.acquire("acme", "worker-b", Duration::from_millis(1)).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Expired without a release: taken over, and the old holder's renewal is refused.
        let _third = lake.acquire("acme", "worker-c", minute).await?;
        let mut second = second;
        let lost = second.renew().await.err().map(|e| e.to_string());
        assert!(lost.as_deref().is_some_and(|e| e.contains("lost the lease")), "{lost:?}");
        Ok(())
    }

    /// Of many workers racing for one free org, exactly one gets it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_workers_get_the_org_once() -> Result<()> {
        let (_dir, lake) = lake();
        let tries = (0..8).map(|n| {
            let lake = lake.clone();
            tokio::spawn(async move { lake.acquire("acme", &format!("worker-{n}"), Duration::from_secs(60)).await })
        });
        let mut won = 0;
        for attempt in tries {
            match attempt.await {
                Ok(Ok(_)) => won += 1,
                Ok(Err(Error::Held { .. })) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1);
        Ok(())
    }
}
