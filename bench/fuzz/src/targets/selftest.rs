//! A target that fails on purpose (`boom`: a panic inside a runtime task; `bad`: an oracle
//! rejection), so the driver's own detection and saving are tested. Not in `TARGETS`.

use crate::{Target, Verdict};

pub struct SelfTest {
    rt: tokio::runtime::Runtime,
}

impl SelfTest {
    pub fn new() -> Self {
        Self {
            rt: crate::runtime(),
        }
    }
}

impl Default for SelfTest {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for SelfTest {
    fn name(&self) -> &'static str {
        "selftest"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[b"boom", b"bad"]
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let boom = input.windows(4).any(|w| w == b"boom");
        // The panic happens on a runtime worker and is swallowed by tokio: only the hook sees it.
        let _ = self.rt.block_on(async move {
            tokio::spawn(async move {
                if boom {
                    panic!("selftest boom");
                }
            })
            .await
        });
        if input.windows(3).any(|w| w == b"bad") {
            return Verdict::Bad("selftest bad".into());
        }
        Verdict::Ok
    }
}
