//! The SMTP client the queue delivers through (DESIGN §5): route, connect, talk, classify.
