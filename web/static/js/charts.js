// Chart.js (vendored UMD build, loaded by index.html as window.Chart) with
// the dashboard's palette and defaults. Every chart made here is destroyed
// when the view changes, so navigating does not leak canvases.

import { compact } from './format.js';

const Chart = window.Chart;
const live = new Set();

export const PALETTE = ['#3056d3', '#13a89e', '#f59f00', '#e8590c', '#7048e8', '#d6336c',
  '#2b8a3e', '#1098ad', '#868e96', '#5c940d', '#ae3ec9', '#495057'];

if (Chart) {
  Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue('--font').trim() || 'system-ui, sans-serif';
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#4a5568';
  Chart.defaults.borderColor = '#e6e9ef';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.plugins.legend.labels.boxHeight = 12;
  Chart.defaults.plugins.tooltip.padding = 10;
}

/** color returns the palette colour for position i. */
export function color(i) { return PALETTE[i % PALETTE.length]; }

// CATEGORY_COLORS gives every known message category its own colour, so a
// category looks the same in every chart, for every customer and period
// (colours by rank would swap as the ranking changes).
const CATEGORY_COLORS = {
  marketing: '#3056d3',
  utility: '#13a89e',
  authentication: '#f59f00',
  authentication_international: '#e8590c',
  service: '#7048e8',
  notification: '#d6336c',
  session: '#2b8a3e',
  marketing_lite: '#1098ad',
};
const SPARE = ['#5c940d', '#ae3ec9', '#868e96', '#495057', '#a61e4d', '#364fc7'];

/** categoryColor returns a category's colour: fixed for the known ones, and for any other a colour derived from its name. */
export function categoryColor(name) {
  const k = String(name || '');
  if (CATEGORY_COLORS[k]) return CATEGORY_COLORS[k];
  let hsh = 0;
  for (const ch of k) hsh = (hsh * 31 + ch.codePointAt(0)) >>> 0;
  return SPARE[hsh % SPARE.length];
}

/** chartBox is a fixed-height container holding one canvas. */
export function chartBox(height = 280) {
  const box = document.createElement('div');
  box.className = 'chart';
  box.style.height = `${height}px`;
  const canvas = document.createElement('canvas');
  canvas.setAttribute('role', 'img');
  box.append(canvas);
  return { box, canvas };
}

function make(canvas, config, label) {
  if (!Chart) {
    canvas.replaceWith(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'Charts are unavailable.' }));
    return null;
  }
  if (label) canvas.setAttribute('aria-label', label);
  const c = new Chart(canvas, config);
  live.add(c);
  return c;
}

/** destroyAll releases every chart (called on navigation). */
export function destroyAll() {
  for (const c of live) c.destroy();
  live.clear();
}

// Counts of messages are whole: precision 0 keeps the axis from showing
// 0.2 … 1.8 when a chart's values are small.
const countAxis = { beginAtZero: true, ticks: { precision: 0, callback: (v) => compact(v) }, grid: { color: '#eef0f4' } };

/** stackedBars draws series (label → values) over labels, stacked. */
export function stackedBars(labels, series, { height = 300, label, yTitle } = {}) {
  const { box, canvas } = chartBox(height);
  make(canvas, {
    type: 'bar',
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label, data: s.values, backgroundColor: s.color || color(i), borderRadius: 2, maxBarThickness: 36,
      })),
    },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
        y: { ...countAxis, stacked: true, title: yTitle ? { display: true, text: yTitle } : undefined },
      },
      plugins: { legend: { position: 'bottom' } },
    },
  }, label);
  return box;
}

/** hbars draws one horizontal bar per label. */
export function hbars(labels, values, { height, label, fmt, tip, colors } = {}) {
  const { box, canvas } = chartBox(height || Math.max(160, labels.length * 28 + 40));
  make(canvas, {
    type: 'bar',
    data: { labels, datasets: [{ data: values, backgroundColor: colors || color(0), borderRadius: 3, maxBarThickness: 22 }] },
    options: {
      indexAxis: 'y',
      scales: { x: { ...countAxis, ticks: { precision: fmt ? undefined : 0, callback: (v) => (fmt ? fmt(v) : compact(v)) } }, y: { grid: { display: false } } },
      plugins: { legend: { display: false }, tooltip: (tip || fmt) ? { callbacks: { label: (c) => (tip || fmt)(c.raw) } } : {} },
    },
  }, label);
  return box;
}

/** doughnut draws shares of a whole (colors: one per label, else the palette in order). */
export function doughnut(labels, values, { height = 260, label, colors } = {}) {
  const { box, canvas } = chartBox(height);
  make(canvas, {
    type: 'doughnut',
    data: { labels, datasets: [{ data: values, backgroundColor: colors || labels.map((_, i) => color(i)), borderWidth: 2, borderColor: '#fff' }] },
    options: { cutout: '62%', plugins: { legend: { position: 'right' } } },
  }, label);
  return box;
}
