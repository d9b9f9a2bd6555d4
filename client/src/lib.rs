//! flotilla-client (in progress)
