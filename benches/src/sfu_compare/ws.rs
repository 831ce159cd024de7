//! A JSON WebSocket connection for signaling.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Error;

/// A signaling socket that speaks JSON text messages.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `url`, asking for `subprotocol` if given.
    pub async fn connect(url: &str, subprotocol: Option<&str>) -> Result<Ws, Error> {
        let mut request = url.into_client_request()?;
        if let Some(p) = subprotocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse()?);
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws { stream })
    }

    /// Sends one message.
    pub async fn send(&mut self, v: &Value) -> Result<(), Error> {
        self.stream.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    /// The next JSON message (pings are answered on the way). Cancel-safe. An error when the
    /// socket closes or a message is not JSON.
    pub async fn next(&mut self) -> Result<Value, Error> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Close(_))) | None => return Err("signaling socket closed".into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}
