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

const countAxis = { beginAtZero: true, ticks: { callback: (v) => compact(v) }, grid: { color: '#eef0f4' } };

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
      scales: { x: { ...countAxis, ticks: { callback: (v) => (fmt ? fmt(v) : compact(v)) } }, y: { grid: { display: false } } },
      plugins: { legend: { display: false }, tooltip: (tip || fmt) ? { callbacks: { label: (c) => (tip || fmt)(c.raw) } } : {} },
    },
  }, label);
  return box;
}

/** doughnut draws shares of a whole. */
export function doughnut(labels, values, { height = 260, label } = {}) {
  const { box, canvas } = chartBox(height);
  make(canvas, {
    type: 'doughnut',
    data: { labels, datasets: [{ data: values, backgroundColor: labels.map((_, i) => color(i)), borderWidth: 2, borderColor: '#fff' }] },
    options: { cutout: '62%', plugins: { legend: { position: 'right' } } },
  }, label);
  return box;
}
