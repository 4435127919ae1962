//! See DESIGN.md §1 for this module's place.
