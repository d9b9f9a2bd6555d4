//! Integration tests of one real `node` process on loopback: flags, bad input, restart after
//! SIGKILL, schedules through the CLI. Files by priority: t10 basic, t50 environment, t90 regressions.

mod t10_basic;
mod t20_http;
mod t20_reflection;
mod t20_schedules;
mod t20_workflows;
mod t30_observe;
mod t35_dashboard;
mod t40_tracing;
mod t50_disk_full;
mod t50_limits;
mod t50_overload;
mod t60_events;
mod webdriver;
