//! `DeliverAward` with its distributors over in-memory ports.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use rust_decimal::Decimal;

use super::*;
use crate::error::HasErrorCode;
use crate::ids::AwardId;
use crate::ports::PortError;
use crate::strategy::AwardCatalogEntry;
use crate::strategy::armory::tests::Seeded;

/// The shard: catalogue, inbox, delivered records, the task row's state.
struct Shard {
    awards: HashMap<i32, (&'static str, &'static str)>,
    inbox: Mutex<HashSet<String>>,
    delivered: Mutex<Vec<Delivery>>,
    /// `completed`, `create`, `dead` or `none` (no row).
    task: Mutex<&'static str>,
    dead_reasons: Mutex<Vec<String>>,
}

impl Shard {
    fn new() -> Self {
        Self {
            awards: HashMap::from([
                (100, ("user_credit_blacklist", "1")),
                (101, ("user_credit_random", "1,100")),
                (102, ("openai_use_count", "5")),
                (105, ("openai_model", "gpt-4")),
                (110, ("user_credit_blacklist", "lots")),
                (111, ("openai_use_count", "0")),
            ]),
            inbox: Mutex::default(),
            delivered: Mutex::default(),
            task: Mutex::new("completed"),
            dead_reasons: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl AwardDeliveryRepository for Shard {
    async fn deliver(&self, d: &Delivery) -> Result<DeliveryOutcome, PortError> {
        if !self.inbox.lock().unwrap().insert(d.message_id.clone()) {
            return Ok(DeliveryOutcome {
                applied: false,
                credit: None,
            });
        }
        self.delivered.lock().unwrap().push(d.clone());
        Ok(DeliveryOutcome {
            applied: true,
            credit: d.credit.map(|a| CreditBalance {
                total_amount: a,
                available_amount: a,
                version: 1,
            }),
        })
    }

    async fn award(&self, award_id: AwardId) -> Result<Option<AwardCatalogEntry>, PortError> {
        Ok(self.awards.get(&award_id.get()).map(|(key, config)| AwardCatalogEntry {
            award_id,
            award_key: (*key).to_owned(),
            award_config: (*config).to_owned(),
            award_desc: String::new(),
        }))
    }

    async fn applied(&self, _user_id: &str, message_id: &str) -> Result<bool, PortError> {
        Ok(self.inbox.lock().unwrap().contains(message_id))
    }

    async fn mark_dead(&self, _user_id: &str, message_id: &str, reason: &str) -> Result<DeadMark, PortError> {
        if self.inbox.lock().unwrap().contains(message_id) {
            return Ok(DeadMark::Delivered);
        }
        let mut task = self.task.lock().unwrap();
        Ok(match *task {
            "none" => DeadMark::NoTask,
            "create" | "fail" => DeadMark::NotPublished,
            _ => {
                *task = "dead";
                self.dead_reasons.lock().unwrap().push(reason.to_owned());
                DeadMark::Marked { attempts: 1 }
            }
        })
    }
}

/// A gateway recording its calls; fails while `down`.
#[derive(Default)]
struct Gateway {
    calls: Mutex<Vec<QuotaIncrease>>,
    down: Mutex<bool>,
}

#[async_trait::async_trait]
impl QuotaGateway for Gateway {
    async fn adjust_quota(&self, increase: &QuotaIncrease) -> Result<(), PortError> {
        if *self.down.lock().unwrap() {
            return Err(PortError::new("openai gateway", "answered 0001: busy"));
        }
        self.calls.lock().unwrap().push(increase.clone());
        Ok(())
    }
}

fn message(id: &str, award_id: i32, award_config: Option<&str>) -> Vec<u8> {
    let config = award_config.map_or(String::new(), |c| format!(r#""awardConfig":"{c}","#));
    format!(
        r#"{{"data":{{{config}"awardId":{award_id},"awardTitle":"t","orderId":"order-{id}","userId":"xiaofuge"}},"id":"{id}","timestamp":1}}"#
    )
    .into_bytes()
}

fn service(shard: &Arc<Shard>, gateway: Option<&Arc<Gateway>>) -> DeliverAward {
    let mut distributors = AwardDistributors::credits(Arc::new(Seeded::new(7)));
    if let Some(g) = gateway {
        distributors = distributors.with(OPENAI_USE_COUNT, Arc::new(OpenAiUseCount::new(g.clone())));
    }
    DeliverAward::new(shard.clone(), distributors)
}

fn applied_credit(d: Delivered) -> Option<Decimal> {
    match d {
        Delivered::Applied { delivery, .. } => delivery.credit,
        other => panic!("not applied: {other:?}"),
    }
}

#[test]
fn random_credits_come_from_the_message_range_or_the_catalogue() {
    let shard = Arc::new(Shard::new());
    let deliver = service(&shard, None);
    let own = applied_credit(block_on(deliver.deliver(&message("m1", 101, None))).unwrap()).unwrap();
    assert!(own >= Decimal::ONE && own <= Decimal::from(100), "{own}");
    let blank = applied_credit(block_on(deliver.deliver(&message("m2", 101, Some(" ")))).unwrap()).unwrap();
    assert!(blank >= Decimal::ONE && blank <= Decimal::from(100), "{blank}");
    let fixed = applied_credit(block_on(deliver.deliver(&message("m3", 101, Some("5,5")))).unwrap());
    assert_eq!(fixed, Some(Decimal::from(5)));
    assert!(matches!(
        block_on(deliver.deliver(&message("m3", 101, Some("5,5")))).unwrap(),
        Delivered::AlreadyApplied
    ));
    assert_eq!(shard.delivered.lock().unwrap().len(), 3);
}

#[test]
fn blacklist_credits_pay_the_configured_amount() {
    let shard = Arc::new(Shard::new());
    let deliver = service(&shard, None);
    let paid = applied_credit(block_on(deliver.deliver(&message("b1", 100, None))).unwrap());
    assert_eq!(paid, Some(Decimal::ONE));
    let paid = applied_credit(block_on(deliver.deliver(&message("b2", 100, Some("0.5")))).unwrap());
    assert_eq!(paid, Some(Decimal::new(5, 1)));
    assert!(distributor::fixed_credit_amount("-1").is_err());
    assert!(distributor::fixed_credit_amount("0.001").is_err());
    assert!(distributor::fixed_credit_amount("1,2").is_err());
    // A config that is not an amount can never be paid: dead, with the reason.
    let Delivered::Dead(dead) = block_on(deliver.deliver(&message("b3", 110, None))).unwrap() else {
        panic!("not dead")
    };
    assert_eq!(dead.error.error_code().code(), "ERR_CONFIG_002");
    assert_eq!(
        shard.dead_reasons.lock().unwrap().as_slice(),
        [r#"award config "lots" is not a credit amount such as 1"#]
    );
}

#[test]
fn use_counts_go_through_the_gateway_once_with_the_order_id_as_key() {
    let shard = Arc::new(Shard::new());
    let gateway = Arc::new(Gateway::default());
    let deliver = service(&shard, Some(&gateway));
    let d = block_on(deliver.deliver(&message("q1", 102, None))).unwrap();
    assert_eq!(applied_credit(d), None, "no credits for a use count");
    assert_eq!(
        gateway.calls.lock().unwrap().as_slice(),
        [QuotaIncrease {
            user_id: "xiaofuge".into(),
            increase: 5,
            idempotency_key: "order-q1".into(),
        }]
    );
    // The message again: applied before, so the gateway is not called again.
    assert!(matches!(
        block_on(deliver.deliver(&message("q1", 102, None))).unwrap(),
        Delivered::AlreadyApplied
    ));
    assert_eq!(gateway.calls.lock().unwrap().len(), 1);
    // The message's own config wins.
    block_on(deliver.deliver(&message("q2", 102, Some("12")))).unwrap();
    assert_eq!(gateway.calls.lock().unwrap()[1].increase, 12);
}

#[test]
fn a_failing_gateway_is_retried_and_records_nothing() {
    let shard = Arc::new(Shard::new());
    let gateway = Arc::new(Gateway::default());
    *gateway.down.lock().unwrap() = true;
    let deliver = service(&shard, Some(&gateway));
    let e = block_on(deliver.deliver(&message("g1", 102, None))).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("0001"), "{e}");
    assert!(shard.delivered.lock().unwrap().is_empty());
    assert_eq!(*shard.task.lock().unwrap(), "completed", "not dead");
    *gateway.down.lock().unwrap() = false;
    assert!(matches!(
        block_on(deliver.deliver(&message("g1", 102, None))).unwrap(),
        Delivered::Applied { .. }
    ));
    assert_eq!(gateway.calls.lock().unwrap().len(), 1);
}

#[test]
fn an_award_key_without_a_distributor_is_dead_never_delivered() {
    let shard = Arc::new(Shard::new());
    // No gateway configured: openai_use_count has no distributor either.
    let deliver = service(&shard, None);
    for (id, award) in [("n1", 105), ("n2", 102)] {
        *shard.task.lock().unwrap() = "completed";
        let Delivered::Dead(dead) = block_on(deliver.deliver(&message(id, award, None))).unwrap() else {
            panic!("not dead")
        };
        assert_eq!((dead.user_id.as_str(), dead.message_id.as_str()), ("xiaofuge", id));
        assert_eq!(dead.task_attempts, Some(1));
        assert!(!dead.error.is_transient());
    }
    assert_eq!(
        shard.dead_reasons.lock().unwrap().as_slice(),
        [
            "no distributor configured for award key openai_model",
            "no distributor configured for award key openai_use_count"
        ]
    );
    assert!(
        shard.delivered.lock().unwrap().is_empty(),
        "never recorded as delivered"
    );
    // Once a distributor is configured, the replayed message is delivered.
    let gateway = Arc::new(Gateway::default());
    let deliver = service(&shard, Some(&gateway));
    assert!(matches!(
        block_on(deliver.deliver(&message("n2", 102, None))).unwrap(),
        Delivered::Applied { .. }
    ));
    assert_eq!(gateway.calls.lock().unwrap().len(), 1);
}

#[test]
fn a_dead_award_waits_for_the_relay_to_record_its_publish() {
    let shard = Arc::new(Shard::new());
    let deliver = service(&shard, None);
    *shard.task.lock().unwrap() = "create";
    let e = block_on(deliver.deliver(&message("w1", 105, None))).unwrap_err();
    assert!(e.is_transient(), "{e}");
    *shard.task.lock().unwrap() = "none";
    let Delivered::Dead(dead) = block_on(deliver.deliver(&message("w1", 105, None))).unwrap() else {
        panic!("not dead")
    };
    assert_eq!(dead.task_attempts, None, "no task row to mark");
}

#[test]
fn unknown_awards_and_bad_configs_are_dead_and_malformed_messages_poison() {
    let shard = Arc::new(Shard::new());
    let gateway = Arc::new(Gateway::default());
    let deliver = service(&shard, Some(&gateway));
    for (id, award, code) in [
        ("u1", 999, "0002"),
        ("u2", 111, "ERR_CONFIG_002"),
        ("u3", 101, "ERR_CONFIG_001"),
    ] {
        *shard.task.lock().unwrap() = "completed";
        let config = (award == 101).then_some("a,b");
        let Delivered::Dead(dead) = block_on(deliver.deliver(&message(id, award, config))).unwrap() else {
            panic!("{id} not dead")
        };
        assert_eq!(dead.error.error_code().code(), code, "{id}");
    }
    assert!(gateway.calls.lock().unwrap().is_empty());
    let e = block_on(deliver.deliver(b"{")).unwrap_err();
    assert!(matches!(e, DeliverError::Malformed(_)) && !e.is_transient());
}
