// @generated placeholder until cargo xtask codegen runs.
#[allow(unused_imports)]
use serde::{Deserialize, Serialize};
