//! The `Draw` command: load the user's quota → decide (pay a ticket, raffle) → one save.
//!
//! The decision is made on a plain read of the account, with no row locked and no transaction
//! open; award stock is taken in Redis meanwhile. The save then writes ticket, quota, award
//! record and outbox events in one transaction on the user's shard, guarded so that it fails
//! as a whole when the account moved since the read (another draw or a recharge of the same
//! user committed first). A moved save gives the stock back and the command decides again on
//! a fresh read: the user's own concurrent draws are serialised by those retries, and every
//! other user's draws never wait on this one.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::account::{Partake, Ticket};
use super::error::ActivityError;
use super::model::Activity;
use super::ports::{DrawSave, DrawSaved, SaveFailure};
use super::service::{ActivityService, MAX_ATTEMPTS, MAX_MOVED_RETRIES};
use crate::events::{AwardStockZero, SendAward};
use crate::ids::{ActivityId, MessageId, OrderId, UserId};
use crate::outbox::{OutboxMessage, TOPIC_ACCOUNT_CHANGED, TOPIC_AWARD_STOCK_ZERO, TOPIC_SEND_AWARD};
use crate::strategy::{ArmedStrategy, RaffleAward, RaffleInput};

/// The committed draw.
#[derive(Debug, Clone)]
pub struct DrawRecorded {
    /// The ticket (= award record order id).
    pub order_id: OrderId,
    /// The award.
    pub award: RaffleAward,
    /// The `send_award` message id.
    pub message_id: MessageId,
    /// The events the save wrote with the rows: `send_award`, `strategy_award_stock_zero`
    /// when the last unit was taken, the account snapshot when quota was spent.
    pub events: Vec<OutboxMessage>,
}

/// The events a decided draw produces, written by the save with its rows.
fn events(
    user: &UserId,
    partake: &Partake,
    award: &RaffleAward,
    at: DateTime<Utc>,
    next_id: &mut dyn FnMut() -> MessageId,
) -> (MessageId, Vec<OutboxMessage>) {
    let ts = at.timestamp_millis();
    let message_id = next_id();
    let mut outbox = vec![OutboxMessage::new(
        user.as_str(),
        TOPIC_SEND_AWARD,
        message_id.clone(),
        ts,
        &SendAward {
            award_config: award.award_config.clone(),
            award_id: award.award_id,
            award_title: award.award_title.clone(),
            order_id: partake.order_id().as_str().to_owned(),
            user_id: user.as_str().to_owned(),
        },
    )];
    if let Some(t) = award.taken.filter(|t| t.remaining == 0) {
        outbox.push(OutboxMessage::new(
            user.as_str(),
            TOPIC_AWARD_STOCK_ZERO,
            next_id(),
            ts,
            &AwardStockZero {
                award_id: t.award_id,
                strategy_id: t.strategy_id,
            },
        ));
    }
    if let Ticket::Paid { after, .. } = &partake.ticket {
        outbox.push(OutboxMessage::new(
            user.as_str(),
            TOPIC_ACCOUNT_CHANGED,
            next_id(),
            ts,
            &after.snapshot(),
        ));
    }
    (message_id, outbox)
}

/// TTL of stock unit locks: until one day after the activity ends (spec §4.6).
pub fn lock_ttl(activity: &Activity, now: DateTime<Utc>) -> Option<Duration> {
    let end = activity.end.and_utc() + chrono::Duration::days(1);
    (end - now).to_std().ok().filter(|d| !d.is_zero())
}

impl ActivityService {
    /// Draws once for a user in an activity: pays a ticket (reused or with quota), raffles
    /// and records the award with its `send_award` event in one transaction on the user's
    /// shard. Award stock taken by a draw that does not commit is given back.
    ///
    /// First the guards of [`ActivityService::admit`] (degrade, shared rate limit). Then the
    /// draw has a deadline (the switch `drawTimeoutMs`): when it passes before the save, the
    /// draw stops with `0006`, writing nothing and giving taken stock back. A save blocked on a
    /// lock fails with the database's lock-wait limit and is rolled back; a save that
    /// committed is always answered as a success. A save whose answer never comes
    /// ([`SaveFailure::Unknown`], past the store's response deadline) answers the store's
    /// failure and keeps the stock it took: it may still commit, and must not oversell then.
    ///
    /// # Errors
    /// `0002`, `0004`, `0005`, `0006`, `ERR_BIZ_002/003/004/006/007/008/009`, store failures.
    pub async fn draw(&self, user_id: &str, activity_id: ActivityId) -> Result<DrawRecorded, ActivityError> {
        let user = UserId::parse(user_id)?;
        let switches = self.admit(&user).await?;
        let blacklist_enabled = switches.blacklist;
        let draw_timeout = chrono::Duration::milliseconds(i64::try_from(switches.draw_timeout_ms).unwrap_or(1_000));
        let cfg = self.config(activity_id).await?;
        let now = self.clock.now();
        let activity = &cfg.activity;
        self.check_running(activity, now)?;
        let strategy = self.strategy.armed(activity.strategy_id).await?;
        let (day, month) = (self.calendar.day(now), self.calendar.month(now));
        let lock_ttl = lock_ttl(activity, now);
        let (mut moved, mut conflicts) = (0, 0);
        let deadline = now + draw_timeout;
        let past_deadline = || {
            let late = self.clock.now() > deadline;
            if late {
                self.guards.refused(super::protection::Guard::TimedOut);
            }
            late.then(|| ActivityError::DeadlineExceeded(activity_id, draw_timeout.num_milliseconds()))
        };
        // The first attempt may decide on the quota this process saw last (see `quota_cache`).
        let mut cached = self.quotas.get(user.as_str(), activity_id);
        loop {
            // Checked before each attempt and before each save, never after a save: a draw
            // that committed is reported as committed however late.
            if let Some(e) = past_deadline() {
                return Err(e);
            }
            let from_cache = cached.is_some();
            let account = match cached.take() {
                Some(a) => a,
                None => self
                    .quota
                    .load_quota(user.as_str(), activity_id, &day, &month)
                    .await?
                    .ok_or(ActivityError::TotalQuotaExhausted(activity_id))?,
            };
            let partake = match account.partake(&day, &month, self.ids.next_order_id()) {
                Ok(p) => p,
                // Never refuse on a remembered quota: it may have been recharged elsewhere.
                Err(_) if from_cache => continue,
                Err(e) => return Err(e),
            };
            let award = self
                .raffle(&strategy, &user, &partake, blacklist_enabled, lock_ttl)
                .await?;
            let (message_id, outbox) = events(&user, &partake, &award, now, &mut || self.ids.next_message_id());
            let save = DrawSave {
                user_id: user.as_str(),
                activity,
                partake: &partake,
                award: &award,
                at: now,
                outbox: &outbox,
            };
            if let Some(e) = past_deadline() {
                self.give_back_award(&award).await;
                return Err(e);
            }
            let saved = self.quota.save_draw(&save).await;
            if !matches!(saved, Ok(DrawSaved::Saved)) {
                self.quotas.forget(user.as_str(), activity_id);
                // A save of unknown outcome may still commit: its unit stays taken.
                if !matches!(saved, Err(SaveFailure::Unknown(_))) {
                    self.give_back_award(&award).await;
                }
            }
            match saved {
                Ok(DrawSaved::Saved) => {
                    match partake.ticket {
                        Ticket::Paid { ref after, .. } => self.quotas.put(after.as_ref().clone()),
                        // An older unused ticket may be next: read it from the shard.
                        Ticket::Reused { .. } => self.quotas.forget(user.as_str(), activity_id),
                    }
                    self.notifier.committed(user.as_str());
                    return Ok(DrawRecorded {
                        order_id: partake.order_id().clone(),
                        award,
                        message_id,
                        events: outbox,
                    });
                }
                Ok(DrawSaved::Moved) if moved < MAX_MOVED_RETRIES => moved += 1,
                Ok(DrawSaved::Moved) => {
                    return Err(ActivityError::Conflict(format!(
                        "the quota of {user} moved under {moved} draws in a row"
                    )));
                }
                Err(SaveFailure::AwardRecorded) => {
                    return Err(ActivityError::TicketUsed(partake.order_id().clone()));
                }
                Err(SaveFailure::Conflict(_)) if conflicts + 1 < MAX_ATTEMPTS => conflicts += 1,
                Err(SaveFailure::Conflict(e)) => return Err(ActivityError::Conflict(e.to_string())),
                Err(SaveFailure::Port(e)) => return Err(e.into()),
                Err(SaveFailure::Unknown(e)) => {
                    return Err(ActivityError::OutcomeUnknown(format!(
                        "the draw of {user} may or may not be saved ({e}); look at the user's awards before drawing again"
                    )));
                }
            }
        }
    }

    /// Runs the strategy for a paid ticket (taking award stock in Redis if the tree says so).
    async fn raffle(
        &self,
        strategy: &ArmedStrategy,
        user: &UserId,
        partake: &Partake,
        blacklist_enabled: bool,
        lock_ttl: Option<Duration>,
    ) -> Result<RaffleAward, ActivityError> {
        let input = RaffleInput {
            user_id: user.as_str(),
            total_used: partake.total_used,
            day_partake_count: partake.day_partake_count,
            blacklist_enabled,
            lock_ttl,
        };
        Ok(strategy
            .raffle(&input, self.strategy.random().as_ref(), self.strategy.stock().as_ref())
            .await
            .map_err(crate::strategy::StrategyError::from)?)
    }

    async fn give_back_award(&self, award: &RaffleAward) {
        if let Some(t) = award.taken
            && let Err(e) = self.strategy.stock().give_back(t.strategy_id, t.award_id).await
        {
            tracing::error!(strategy.id = t.strategy_id.get(), award.id = t.award_id.get(), error = %e, "could not give back award stock");
        }
    }
}
