//! The SFU's error type. Each variant says whose fault it is through [`SfuError::fault`].

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The participant or API caller sent something wrong or not allowed.
    Caller,
    /// A bug or resource problem inside tern.
    Internal,
}

/// Errors returned by [`crate::Sfu::handle_command`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SfuError {
    /// No room of that name on this worker.
    #[error("room {0:?} not found")]
    RoomNotFound(String),
    /// No such participant (never joined, or already gone).
    #[error("participant not found")]
    ParticipantNotFound,
    /// No such track in the participant's room.
    #[error("track {0} not found")]
    TrackNotFound(String),
    /// The participant's grants do not allow this.
    #[error("not allowed: {0}")]
    PermissionDenied(&'static str),
    /// The SDP could not be parsed or negotiated.
    #[error("SDP could not be negotiated: {0}")]
    BadSdp(String),
    /// An answer arrived when no offer was outstanding.
    #[error("no offer is outstanding")]
    NoPendingOffer,
    /// An ICE candidate could not be parsed.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
    /// The room or participant is at its configured limit.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// A data message, as it would be delivered, is larger than the limit (bytes).
    #[error("a data message may have at most {0} bytes")]
    DataTooLarge(usize),
    /// The participant id is already in use on this worker.
    #[error("participant id already in use")]
    DuplicateParticipant,
    /// The worker is not configured with a public address.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SfuError {
    /// Who caused this error.
    pub fn fault(&self) -> Fault {
        match self {
            SfuError::Internal(_) | SfuError::DuplicateParticipant => Fault::Internal,
            _ => Fault::Caller,
        }
    }

    /// A stable, machine-readable code, used as is in signaling and REST errors.
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::RoomNotFound(_) => "room_not_found",
            SfuError::ParticipantNotFound => "participant_not_found",
            SfuError::TrackNotFound(_) => "track_not_found",
            SfuError::PermissionDenied(_) => "permission_denied",
            SfuError::BadSdp(_) => "bad_sdp",
            SfuError::NoPendingOffer => "no_pending_offer",
            SfuError::BadCandidate(_) => "bad_candidate",
            SfuError::LimitReached(_) => "limit_reached",
            SfuError::DataTooLarge(_) => "data_too_large",
            SfuError::DuplicateParticipant | SfuError::Internal(_) => "internal",
        }
    }
}
