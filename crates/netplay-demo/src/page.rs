//! The page itself (wasm32 only): the lobby, the page's loop, the dots and the chat.

use std::cell::RefCell;
use std::collections::BTreeMap;

use netplay::multiplayer::{
    Lobby, LobbyEvent, LobbyMode, SceneEvent, SceneMultiplayer, Target, TransferMode,
};
use netplay::rtc::PeerConfig;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, Document, Element, HtmlCanvasElement, HtmlInputElement,
    KeyboardEvent, MouseEvent, UrlSearchParams, Window,
};

/// The first byte of a position update (never the first byte of UTF-8 text).
const POSITION: u8 = 0xFF;
/// The page's loop: about 60 rounds a second, one position update each.
const TICK_MS: i32 = 16;
/// How far an arrow key moves the dot.
const STEP: f32 = 12.0;
const RADIUS: f64 = 12.0;

/// Everything the page keeps between two rounds of its loop.
struct App {
    scene: SceneMultiplayer<Lobby>,
    document: Document,
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    me: i32,
    position: (f32, f32),
    /// Connected peers and their last position.
    peers: BTreeMap<i32, Option<(f32, f32)>>,
}

/// A handler of the page's.
type Handler = Closure<dyn FnMut(JsValue)>;

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
    /// The page's handlers: they live as long as the page.
    static HANDLERS: RefCell<Vec<Handler>> = const { RefCell::new(Vec::new()) };
}

fn element(document: &Document, id: &str) -> Result<Element, JsValue> {
    document
        .get_element_by_id(id)
        .ok_or_else(|| JsValue::from_str(&format!("the page has no #{id}")))
}

fn set_text(document: &Document, id: &str, text: &str) {
    if let Some(e) = document.get_element_by_id(id) {
        e.set_text_content(Some(text));
    }
}

/// A colour per peer id.
fn colour(id: i32) -> String {
    format!("hsl({}, 70%, 45%)", (id.unsigned_abs() as u64 * 137) % 360)
}

/// Runs a handler with the app, if it exists and is not busy.
fn with_app(f: impl FnOnce(&mut App)) {
    APP.with(|app| {
        if let Ok(mut app) = app.try_borrow_mut() {
            if let Some(app) = app.as_mut() {
                f(app);
            }
        }
    });
}

/// Registers `f` for `event` on `target`; the handler lives as long as the page.
fn listen(
    target: &web_sys::EventTarget,
    event: &str,
    f: impl FnMut(JsValue) + 'static,
) -> Result<(), JsValue> {
    let handler = Handler::new(f);
    target.add_event_listener_with_callback(event, handler.as_ref().unchecked_ref())?;
    HANDLERS.with(|h| h.borrow_mut().push(handler));
    Ok(())
}

/// The page's entry point: joins (or creates) the lobby of the address and starts the loop.
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let window: Window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let location = window.location();
    let params = UrlSearchParams::new_with_str(&location.search()?)?;
    let lobby = params.get("lobby").unwrap_or_default();
    let mode = if params.has("server") {
        LobbyMode::ServerClient
    } else {
        LobbyMode::Mesh
    };
    let scheme = if location.protocol()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let url = format!("{scheme}://{}/", location.host()?);
    let canvas: HtmlCanvasElement = element(&document, "field")?.dyn_into()?;
    let ctx: CanvasRenderingContext2d = canvas
        .get_context("2d")?
        .ok_or("no 2d context")?
        .dyn_into()?;
    let scene = match Lobby::connect(&url, &lobby, mode, PeerConfig::default()) {
        Ok(lobby) => SceneMultiplayer::new(lobby),
        Err(e) => {
            set_text(&document, "status", &format!("cannot reach {url}: {e}"));
            return Ok(());
        }
    };
    let position = (canvas.width() as f32 / 2.0, canvas.height() as f32 / 2.0);
    APP.with(|app| {
        *app.borrow_mut() = Some(App {
            scene,
            document: document.clone(),
            canvas: canvas.clone(),
            ctx,
            me: 0,
            position,
            peers: BTreeMap::new(),
        })
    });

    listen(&canvas, "mousemove", |e| {
        if let Some(e) = e.dyn_ref::<MouseEvent>() {
            let (x, y) = (e.offset_x() as f32, e.offset_y() as f32);
            with_app(|app| app.position = (x, y));
        }
    })?;
    listen(&window, "keydown", |e| {
        let Some(e) = e.dyn_ref::<KeyboardEvent>() else {
            return;
        };
        let typing = e
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
            .is_some();
        let step = match e.key().as_str() {
            "ArrowLeft" => (-STEP, 0.0),
            "ArrowRight" => (STEP, 0.0),
            "ArrowUp" => (0.0, -STEP),
            "ArrowDown" => (0.0, STEP),
            _ => return,
        };
        if typing {
            return;
        }
        e.prevent_default();
        with_app(|app| {
            let (w, h) = (app.canvas.width() as f32, app.canvas.height() as f32);
            app.position.0 = (app.position.0 + step.0).clamp(0.0, w);
            app.position.1 = (app.position.1 + step.1).clamp(0.0, h);
        });
    })?;
    let input: HtmlInputElement = element(&document, "chat-input")?.dyn_into()?;
    let field = input.clone();
    listen(&input, "keydown", move |e| {
        let Some(e) = e.dyn_ref::<KeyboardEvent>() else {
            return;
        };
        if e.key() != "Enter" || field.value().is_empty() {
            return;
        }
        let text = field.value();
        field.set_value("");
        with_app(|app| app.say(&text));
    })?;
    let tick = Handler::new(|_| with_app(App::tick));
    window.set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        TICK_MS,
    )?;
    HANDLERS.with(|h| h.borrow_mut().push(tick));
    Ok(())
}

impl App {
    /// One round of the page's loop.
    fn tick(&mut self) {
        self.scene.poll();
        while let Some(event) = self.scene.peer_mut().poll_lobby_event() {
            self.on_lobby(event);
        }
        let mut list_changed = false;
        while let Some(event) = self.scene.poll_event() {
            match event {
                SceneEvent::PeerConnected(id) => {
                    self.peers.insert(id, None);
                    list_changed = true;
                }
                SceneEvent::PeerDisconnected(id) => {
                    self.peers.remove(&id);
                    list_changed = true;
                }
                SceneEvent::Packet { from, data, .. } => self.on_packet(from, &data),
                _ => {}
            }
        }
        if list_changed {
            self.show_peers();
        }
        self.update_positions();
        if !self.peers.is_empty() {
            let mut update = vec![POSITION];
            update.extend_from_slice(&self.position.0.to_le_bytes());
            update.extend_from_slice(&self.position.1.to_le_bytes());
            let _ = self
                .scene
                .send_bytes(&update, Target::Broadcast, TransferMode::Unreliable, 0);
        }
        self.draw();
    }

    fn on_lobby(&mut self, event: LobbyEvent) {
        match event {
            LobbyEvent::Id { id, .. } => self.me = id,
            LobbyEvent::Joined { lobby } => {
                let search = format!("?lobby={lobby}");
                if let Some(window) = web_sys::window() {
                    if let Ok(history) = window.history() {
                        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&search));
                    }
                    if let Some(invite) = self.document.get_element_by_id("invite") {
                        let href = window.location().href().unwrap_or_default();
                        invite.set_text_content(Some(&href));
                        let _ = invite.set_attribute("href", &href);
                    }
                }
                if let Some(status) = self.document.get_element_by_id("status") {
                    status.set_text_content(Some(&format!("lobby {lobby}, joined as {}", self.me)));
                    let _ = status.set_attribute("data-lobby", &lobby);
                    let _ = status.set_attribute("data-id", &self.me.to_string());
                }
            }
            LobbyEvent::Sealed => self.note("the lobby is sealed: nobody else can join"),
            LobbyEvent::SignalingClosed { code, reason } => {
                self.note(&format!("signaling closed: {code} {reason}"))
            }
            LobbyEvent::Error(e) => self.note(&format!("error: {e}")),
            _ => {}
        }
    }

    fn on_packet(&mut self, from: i32, data: &[u8]) {
        if data.len() == 9 && data[0] == POSITION {
            let x = f32::from_le_bytes([data[1], data[2], data[3], data[4]]);
            let y = f32::from_le_bytes([data[5], data[6], data[7], data[8]]);
            if x.is_finite() && y.is_finite() {
                if let Some(p) = self.peers.get_mut(&from) {
                    *p = Some((x, y));
                }
            }
        } else if let Ok(text) = std::str::from_utf8(data) {
            self.chat_line(from, text);
        }
    }

    fn say(&mut self, text: &str) {
        let sent = self.scene.send_bytes(
            text.as_bytes(),
            Target::Broadcast,
            TransferMode::Reliable,
            0,
        );
        match sent {
            Ok(()) => self.chat_line(self.me, text),
            Err(e) => self.note(&format!("not sent: {e}")),
        }
    }

    fn chat_line(&self, from: i32, text: &str) {
        let Ok(log) = element(&self.document, "chat-log") else {
            return;
        };
        if let Ok(line) = self.document.create_element("div") {
            line.set_text_content(Some(&format!("{from}: {text}")));
            let _ = log.append_child(&line);
            log.set_scroll_top(log.scroll_height());
        }
    }

    fn note(&self, text: &str) {
        if let Some(notes) = self.document.get_element_by_id("notes") {
            let old = notes.text_content().unwrap_or_default();
            notes.set_text_content(Some(&format!("{old}{text}\n")));
        }
    }

    /// `#peers`: one `li` per connected peer, in id order.
    fn show_peers(&self) {
        let Ok(list) = element(&self.document, "peers") else {
            return;
        };
        list.set_inner_html("");
        for &id in self.peers.keys() {
            if let Ok(li) = self.document.create_element("li") {
                li.set_text_content(Some(&id.to_string()));
                let _ = li.set_attribute("data-id", &id.to_string());
                let _ =
                    li.set_attribute("style", &format!("border-left: 0.8em solid {}", colour(id)));
                let _ = list.append_child(&li);
            }
        }
        if let Some(input) = self.document.get_element_by_id("chat-input") {
            if self.peers.is_empty() {
                let _ = input.set_attribute("disabled", "");
            } else {
                let _ = input.remove_attribute("disabled");
            }
        }
    }

    /// Each peer's `li` carries its dot's last position (`data-x`, `data-y`).
    fn update_positions(&self) {
        for (&id, position) in &self.peers {
            let Some((x, y)) = position else { continue };
            let selector = format!("#peers li[data-id=\"{id}\"]");
            if let Ok(Some(li)) = self.document.query_selector(&selector) {
                let _ = li.set_attribute("data-x", &format!("{x:.0}"));
                let _ = li.set_attribute("data-y", &format!("{y:.0}"));
            }
        }
    }

    fn draw(&self) {
        let (w, h) = (self.canvas.width() as f64, self.canvas.height() as f64);
        self.ctx.clear_rect(0.0, 0.0, w, h);
        let dots = self
            .peers
            .iter()
            .filter_map(|(&id, p)| p.map(|p| (id, p)))
            .chain(std::iter::once((self.me, self.position)));
        for (id, (x, y)) in dots {
            self.ctx.begin_path();
            let _ = self.ctx.arc(
                f64::from(x),
                f64::from(y),
                RADIUS,
                0.0,
                std::f64::consts::TAU,
            );
            self.ctx.set_fill_style_str(&colour(id));
            self.ctx.fill();
            self.ctx.set_fill_style_str("#222");
            let _ = self.ctx.fill_text(
                &id.to_string(),
                f64::from(x) + RADIUS + 2.0,
                f64::from(y) + 4.0,
            );
        }
    }
}
