//! `history --html`: a self-contained page (no network, no external assets) showing, for each
//! secret, which version held each staging label when, who moved it, and every event.
//!
//! The horizontal axis is the order of label changes, not linear time: every change gets the
//! same width (at least [`SLOT_PX_MIN`] pixels, the lanes scroll sideways when they need more),
//! so a label held for a second stays as readable as one held for a year, and a history of
//! thousands of events is still lanes, not a barcode. Ticks under the lanes give the time of
//! the change they stand at; a span still held runs to the end (`now`). The scroll box is laid
//! out right to left (its content left to right), so it opens at its right end: the default
//! view shows the recent changes and the labels held now, without a script; the lane names
//! stick to the box's left edge. Each version has one colour everywhere (from the order it
//! first got a label), listed with its full id in the legend; the span and event tables say
//! everything in words, so nothing needs hovering.
//!
//! Printed, the lanes are squeezed to the page width (positions are percentages of the lanes,
//! which only the screen gives a width in pixels) with their colours kept, and only a few ticks.
//!
//! A small inline script writes the measured geometry of every lane and span, the colours, the
//! table rows and every URL attribute into `#layout-report` (JSON), so a test in a real browser
//! can check what is on screen.

use std::collections::BTreeMap;

use ledger_core::time::format_rfc3339_ms;

/// One event of a history document, for the text and HTML views.
pub(crate) struct Row {
    pub seq: u64,
    pub recorded_at_ms: i64,
    pub actor: String,
    pub request_id: String,
    pub operation: String,
    pub event: String,
    pub change: String,
    /// For `LabelMoved`: (label, from, to).
    pub label_move: Option<(String, Option<String>, Option<String>)>,
}

/// One secret of a history document: who it is, and its events.
pub(crate) struct SecretRows {
    pub name: String,
    pub region: String,
    pub arn: String,
    pub rows: Vec<Row>,
}

/// What the page says about the whole log when it was made.
pub(crate) struct PageFacts {
    pub head_seq: u64,
    pub head_hash: String,
    /// `Ok(events)` if the chain verified, `Err(reason)` if not.
    pub verified: Result<u64, String>,
    pub generated_at_ms: i64,
}

/// Narrowest width of one label change on the axis.
pub(crate) const SLOT_PX_MIN: f64 = 14.0;
/// Width the lanes fill when the changes fit.
const LANES_PX: f64 = 960.0;
/// Beyond this many slots a printed span is too narrow for its version id: the lanes are
/// marked `dense` and print their spans without text (the span table has the ids).
const PRINT_DENSE_SLOTS: usize = 40;
/// No tick this near the end of the axis, where it would run into `now`, in pixels.
const TICK_END_PX: f64 = 160.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The colour of the `index`-th version of a secret: hues a golden angle apart, so versions
/// next to each other differ clearly; dark enough for white text.
fn colour(index: usize) -> String {
    let hue = (index as f64 * 137.508) % 360.0;
    let lightness = [36, 44, 30][index % 3];
    format!("hsl({hue:.0}, 65%, {lightness}%)")
}

/// One label on one version: from which change (index, seq, time), who moved it there, and
/// until which change (`None`: still held).
struct Span {
    from: usize,
    seq: u64,
    at_ms: i64,
    version: String,
    actor: String,
    until: Option<(usize, u64, i64)>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em}table{border-collapse:collapse;font-size:13px;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}code{font-size:12px}\
.facts td:first-child{font-weight:bold}.ok{color:#1a7f37}.bad{color:#b42318;font-weight:bold}\
.scroll{overflow-x:auto;border:1px solid #ddd;padding:4px 0;direction:rtl}\
.lanes{position:relative;direction:ltr;margin-right:auto}\
.lbl{font-weight:bold;font-size:12px;margin:6px 4px 2px;position:sticky;left:4px;width:max-content;background:#fff;padding:0 4px}\
.lane{position:relative;height:24px;background:#f4f4f4}\
.span{position:absolute;top:0;height:24px;overflow:hidden;white-space:nowrap;font:11px/24px monospace;color:#fff;\
padding-left:3px;box-sizing:border-box;border-right:1px solid #fff}\
.axis{position:relative;height:34px;font-size:10px;color:#555}.tick{position:absolute;top:0;border-left:1px solid #999;\
padding-left:2px;height:34px;white-space:nowrap}.tick.now{left:auto;right:0;border-left:0;border-right:1px solid #999;\
padding:0 2px 0 0}.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;\
vertical-align:middle}.printnote{display:none;font-style:italic}\
@media print{body{margin:0;print-color-adjust:exact;-webkit-print-color-adjust:exact}\
.scroll{overflow:visible;direction:ltr;border:0;padding:0;break-inside:avoid}.lanes{width:auto!important}\
.lbl{position:static}.span{padding-left:0}.dense .span{color:transparent}.tick{display:none}.tick.keep{display:block}.printnote{display:block}}";

/// Writes the measured geometry into `#layout-report`: per lane its box, its label's box, the
/// visible part of its scroll box (`view`) and how far that box scrolls (`overflow`), and per
/// span its box and computed colour; the legend's colours; the rows of the span table; the
/// number of event rows; whether both tables are shown; and every URL-bearing attribute.
const MEASURE: &str = r#"<script>(function(){
function box(e){var b=e.getBoundingClientRect();return {x:b.left,y:b.top,width:b.width,height:b.height};}
function shown(e){return e!==null&&e.offsetHeight>0&&getComputedStyle(e).visibility==='visible';}
var r={viewport:{x:0,y:0,width:innerWidth,height:innerHeight},lanes:[],legend:[],spanRows:[],eventRows:0,urls:[]};
document.querySelectorAll('.lane').forEach(function(l){
  var s=l.closest('.scroll'),b=s.getBoundingClientRect(),o=box(l),spans=[];
  o.secret=l.dataset.secret;o.label=l.dataset.label;o.name=box(l.previousElementSibling);
  o.view={x:b.left+s.clientLeft,y:b.top+s.clientTop,width:s.clientWidth,height:s.clientHeight};
  o.overflow=s.scrollWidth-s.clientWidth;
  l.querySelectorAll('.span').forEach(function(e){var c=box(e),st=getComputedStyle(e);
    c.version=e.dataset.version;c.current=e.dataset.current==='1';c.colour=st.backgroundColor;
    c.adjust=st.printColorAdjust;spans.push(c);});
  o.spans=spans;r.lanes.push(o);});
document.querySelectorAll('.swatch').forEach(function(e){
  r.legend.push({version:e.dataset.version,colour:getComputedStyle(e).backgroundColor});});
document.querySelectorAll('table.spans tr').forEach(function(t){if(t.querySelector('td')){
  r.spanRows.push(Array.prototype.map.call(t.cells,function(c){return c.textContent;}));}});
r.eventRows=document.querySelectorAll('table.events td:first-child').length;
r.tablesShown=Array.prototype.every.call(document.querySelectorAll('table.spans,table.events'),shown)
  &&document.querySelector('table.spans')!==null&&document.querySelector('table.events')!==null;
document.querySelectorAll('[src],[href],[srcset],[action],[data],[poster]').forEach(function(e){
  ['src','href','srcset','action','data','poster'].forEach(function(a){if(e.hasAttribute(a)){r.urls.push(e.getAttribute(a));}});});
document.getElementById('layout-report').textContent=JSON.stringify(r);})();</script>"#;

/// The page for the secrets `secret_id` named (one section each).
pub(crate) fn page(secret_id: &str, secrets: &[SecretRows], facts: &PageFacts) -> String {
    let region = secrets.first().map_or("", |s| s.region.as_str());
    let mut out = String::new();
    out.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>History of ");
    out.push_str(&escape(&format!("{secret_id} in {region}")));
    out.push_str(&format!("</title><style>{STYLE}</style></head><body>"));
    out.push_str(&format!("<h1>History of {} in {}</h1>", escape(secret_id), escape(region)));
    let verified = match &facts.verified {
        Ok(events) => {
            format!("<span class=\"ok\">verified</span>: chain, hashes and every rule of all {events} events")
        }
        Err(reason) => format!("<span class=\"bad\">FAILED</span>: {}", escape(reason)),
    };
    out.push_str(&format!(
        "<table class=\"facts\"><tr><td>region</td><td>{}</td></tr><tr><td>log head</td><td>seq {} <code>{}</code></td></tr>\
         <tr><td>verification when this page was made</td><td>{verified}</td></tr><tr><td>made at</td><td>{}</td></tr></table>",
        escape(region),
        facts.head_seq,
        escape(&facts.head_hash),
        format_rfc3339_ms(facts.generated_at_ms)
    ));
    if secrets.len() > 1 {
        out.push_str(&format!(
            "<p>This name was used by {} secrets in {} (re-created after a purge); each has its own section.</p>",
            secrets.len(),
            escape(region)
        ));
    }
    for secret in secrets {
        section(&mut out, secret);
    }
    out.push_str("<pre id=\"layout-report\" hidden></pre>");
    out.push_str(MEASURE);
    out.push_str("</body></html>\n");
    out
}

/// A secret's label changes laid out on the axis: the spans of every label, one slot per change.
struct Layout<'a> {
    /// The changes, in order: the slots of the axis.
    changes: Vec<&'a Row>,
    spans: BTreeMap<String, Vec<Span>>,
    /// The versions in the order they first got a label: the order of their colours.
    first_seen: Vec<String>,
    /// One per change, and the last one running to now.
    slots: usize,
    slot_px: f64,
}

impl<'a> Layout<'a> {
    /// The spans of the label changes among `rows`.
    fn new(rows: &'a [Row]) -> Self {
        let changes: Vec<&Row> = rows.iter().filter(|r| r.label_move.is_some()).collect();
        let mut spans: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        let mut first_seen: Vec<String> = Vec::new();
        for (i, row) in changes.iter().enumerate() {
            let Some((label, _, to)) = &row.label_move else { continue };
            let list = spans.entry(label.clone()).or_default();
            if let Some(last) = list.last_mut().filter(|s| s.until.is_none()) {
                last.until = Some((i, row.seq, row.recorded_at_ms));
            }
            if let Some(version) = to {
                if !first_seen.contains(version) {
                    first_seen.push(version.clone());
                }
                let span = Span {
                    from: i,
                    seq: row.seq,
                    at_ms: row.recorded_at_ms,
                    version: version.clone(),
                    actor: row.actor.clone(),
                    until: None,
                };
                list.push(span);
            }
        }
        let slots = changes.len() + 1;
        let slot_px = (LANES_PX / slots as f64).max(SLOT_PX_MIN);
        Layout { changes, spans, first_seen, slots, slot_px }
    }

    /// The width of the lanes and the axis, in pixels.
    fn width(&self) -> f64 {
        self.slot_px * self.slots as f64
    }

    /// Where `slots` slots end, in percent of the lanes' width (screen or page).
    fn percent(&self, slots: usize) -> f64 {
        slots as f64 * 100.0 / self.slots as f64
    }

    /// The colour of `version`, as in the legend.
    fn hue(&self, version: &str) -> String {
        colour(self.first_seen.iter().position(|v| v == version).unwrap_or(0))
    }
}

/// One secret's section: heading, lanes, legend, and the spans and events in words.
fn section(out: &mut String, secret: &SecretRows) {
    let layout = Layout::new(&secret.rows);
    heading(out, secret, layout.changes.len());
    lanes(out, secret, &layout);
    legend(out, &layout);
    span_table(out, &layout.spans);
    event_table(out, &secret.rows);
}

/// The secret's heading: name, region, ARN, counts and time range, and how to read the lanes.
fn heading(out: &mut String, secret: &SecretRows, changes: usize) {
    let rows = &secret.rows;
    out.push_str(&format!(
        "<h2>{} in {}</h2><p>ARN <code>{}</code>. {} events, {} label changes{}.</p>",
        escape(&secret.name),
        escape(&secret.region),
        escape(&secret.arn),
        rows.len(),
        changes,
        match (rows.first(), rows.last()) {
            (Some(a), Some(b)) =>
                format!(" from {} to {}", format_rfc3339_ms(a.recorded_at_ms), format_rfc3339_ms(b.recorded_at_ms)),
            _ => String::new(),
        }
    ));
    out.push_str(
        "<p>Each lane is a staging label; each span the version that held it, from the change that moved it there to \
         the next one (to the end if it still holds it). Every label change has the same width; the ticks give times. \
         The lanes open at the recent end: scroll left for older changes.</p><p class=\"printnote\">Printed, the lanes \
         are squeezed to the page width; the tables of spans and events below say everything in words.</p>",
    );
}

/// The scrolling lanes: one per label, a coloured span per version that held it, the axis below.
fn lanes(out: &mut String, secret: &SecretRows, layout: &Layout<'_>) {
    let dense = if layout.slots > PRINT_DENSE_SLOTS { " dense" } else { "" };
    out.push_str(&format!(
        "<div class=\"scroll\"><div class=\"lanes{dense}\" style=\"width:{:.1}px\">",
        layout.width()
    ));
    for (label, list) in &layout.spans {
        out.push_str(&format!(
            "<div class=\"lbl\">{}</div><div class=\"lane\" data-secret=\"{}\" data-label=\"{}\">",
            escape(label),
            escape(&secret.arn),
            escape(label)
        ));
        for s in list {
            let end = s.until.map_or(layout.slots, |(i, _, _)| i);
            let (left, width) = (layout.percent(s.from), layout.percent(end - s.from));
            out.push_str(&format!(
                "<div class=\"span\" data-version=\"{}\" data-current=\"{}\" style=\"left:{left:.4}%;width:{width:.4}%;background:{}\">{}</div>",
                escape(&s.version),
                u8::from(s.until.is_none()),
                layout.hue(&s.version),
                escape(&s.version)
            ));
        }
        out.push_str("</div>");
    }
    axis(out, layout);
    out.push_str("</div></div>");
}

/// The axis under the lanes: ticks with the seq and time of a change, and `now` at the right end.
/// On screen a tick every 170 px or more, none so near the end that it runs into `now`;
/// printed (the lanes squeezed to the page) only the ticks marked `keep`, at most five.
fn axis(out: &mut String, layout: &Layout<'_>) {
    out.push_str("<div class=\"axis\">");
    #[allow(clippy::cast_possible_truncation)]
    let every = (170.0 / layout.slot_px).ceil().clamp(1.0, 1e6) as usize;
    let print_every = every * layout.slots.div_ceil(5 * every).max(1);
    let room = |i: usize| (layout.slots - i) as f64 * layout.slot_px >= TICK_END_PX;
    for (i, row) in layout.changes.iter().enumerate().step_by(every).filter(|(i, _)| room(*i)) {
        let keep = i % print_every == 0 && (layout.slots - 1 - i) * 5 >= layout.slots;
        out.push_str(&format!(
            "<div class=\"tick{}\" style=\"left:{:.4}%\">seq {}<br>{}</div>",
            if keep { " keep" } else { "" },
            layout.percent(i),
            row.seq,
            escape(&format_rfc3339_ms(row.recorded_at_ms))
        ));
    }
    out.push_str("<div class=\"tick keep now\">now</div>");
    out.push_str("</div>");
}

/// The legend: one colour per version, with its full id and the labels it holds now.
fn legend(out: &mut String, layout: &Layout<'_>) {
    out.push_str("<h3>Versions</h3><table><tr><th>colour</th><th>version id</th><th>labels now</th></tr>");
    for (index, version) in layout.first_seen.iter().enumerate() {
        let now: Vec<&str> = layout
            .spans
            .iter()
            .filter(|(_, list)| list.last().is_some_and(|s| s.until.is_none() && &s.version == version))
            .map(|(label, _)| label.as_str())
            .collect();
        out.push_str(&format!(
            "<tr><td><span class=\"swatch\" data-version=\"{}\" style=\"background:{}\"></span></td><td><code>{}</code></td><td>{}</td></tr>",
            escape(version),
            colour(index),
            escape(version),
            escape(&now.join(", "))
        ));
    }
    out.push_str("</table>");
}

/// The table of every span in words: label, version, from, until, and who moved it there.
fn span_table(out: &mut String, spans: &BTreeMap<String, Vec<Span>>) {
    out.push_str("<h3>Spans</h3><table class=\"spans\"><tr><th>label</th><th>version</th><th>from</th><th>until</th><th>moved there by</th></tr>");
    for (label, list) in spans {
        for s in list {
            let until = s
                .until
                .map_or("now (still held)".to_string(), |(_, seq, t)| format!("seq {seq}, {}", format_rfc3339_ms(t)));
            out.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>seq {}, {}</td><td>{}</td><td>{}</td></tr>",
                escape(label),
                escape(&s.version),
                s.seq,
                format_rfc3339_ms(s.at_ms),
                escape(&until),
                escape(&s.actor)
            ));
        }
    }
    out.push_str("</table>");
}

/// The table of every event of the secret.
fn event_table(out: &mut String, rows: &[Row]) {
    out.push_str("<h3>Events</h3><table class=\"events\"><tr><th>seq</th><th>time</th><th>actor</th><th>operation</th><th>request</th><th>event</th><th>change</th></tr>");
    for e in rows {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            format_rfc3339_ms(e.recorded_at_ms),
            escape(&e.actor),
            escape(&e.operation),
            escape(&e.request_id),
            escape(&e.event),
            escape(&e.change)
        ));
    }
    out.push_str("</table>");
}
