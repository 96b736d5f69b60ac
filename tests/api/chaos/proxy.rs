//! A TCP proxy that can be cut (every open connection dropped, new ones refused) and
//! restored: what the server sees of a backend restarting.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::helpers::free_port;

/// A TCP proxy that can be cut (connections dropped, new ones refused) and restored.
pub struct Proxy {
    pub port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let port = free_port();
        let (up, rx) = watch::channel(true);
        tokio::spawn(relay(port, target, rx));
        Proxy { port, up }
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn relay(port: u16, target: SocketAddr, mut up: watch::Receiver<bool>) {
    loop {
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener = socket.listen(128).unwrap();
        let mut cut = up.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    let mut down = up.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = down.wait_for(|u| !*u) => {}
                        }
                    });
                }
                changed = cut.wait_for(|u| !*u) => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}
