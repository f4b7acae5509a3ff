//! What the end-to-end tests share: the gateway under test, the real binary, a raw HTTP/1.1
//! client, JWT forging, and the paths and bodies every file sends.

mod app;
mod bodies;
mod paths;
mod process;
mod redis_server;

// Used by path (`raw_http::open`, `jwt::header`): their short names alone would say too little.
pub mod jwt;
pub mod raw_http;

pub use app::{
    PASSTHROUGH_ENV, TestApp, assert_insufficient_scope, captured_logs, spawn_app, spawn_app_with,
    spawn_gateway, start_gateway,
};
pub use bodies::{
    JPEG_MIN_LEN, MULTIPART_BOUNDARY, PHOTO_LIMIT, Part, jpeg, multipart_body, sha256_hex,
};
pub use paths::{DEMO, GUEST_PHOTO, ME, MEGAN, group_photo, user_photo};
pub use process::{BINARY, GatewayProcess};
pub use redis_server::{REDIS_USER, RedisServer, aes_key_b64, assert_no_clear_jwt, free_port};
