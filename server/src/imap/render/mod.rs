//! What FETCH and SEARCH read out of a raw RFC 5322 message: ENVELOPE, BODYSTRUCTURE,
//! body sections and their decoded (BINARY) forms.
