//! The soak's verdicts, printed as they are reached.

pub struct Verdicts {
    pass: bool,
}

impl Verdicts {
    pub fn new() -> Self {
        Self { pass: true }
    }

    pub fn check(&mut self, what: String, good: bool) {
        println!("  {} {what}", if good { "ok  " } else { "FAIL" });
        self.pass &= good;
    }

    pub fn passed(&self) -> bool {
        self.pass
    }
}
