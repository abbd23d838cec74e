// Loads UI-format workflows into ComfyUI's real frontend in headless Chromium and reports
// what the frontend makes of them: graphToPrompt's API prompt, its own re-serialisation,
// each node's size against the size the frontend needs, and (optionally) a screenshot.
//
//   node harness/frontend_check.mjs JOB.json > RESULT.json
//
// JOB: {"url": "http://127.0.0.1:PORT", "chromium": "/usr/bin/chromium",
//       "files": ["workflows/basic_edit.json", ...], "screenshots": "DIR or null"}
// Needs playwright-core (npm install --prefix .cache/frontend playwright-core, or NODE_PATH)
// and a Chromium; harness/frontend_check.py runs it and finds both.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { chromium } = require('playwright-core');

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const browser = await chromium.launch({
  executablePath: job.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-dev-shm-usage'],
});
const results = {};
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(job.url);
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph && window.app.canvas,
                             null, { timeout: 180000 });
  // Settle the first-run UI: no templates dialog, no side panels over the canvas.
  await page.evaluate(async () => {
    const settings = window.app.extensionManager?.setting;
    if (settings) {
      for (const [key, value] of [['Comfy.TutorialCompleted', true], ['Comfy.Minimap.Visible', false]]) {
        try { await settings.set(key, value); } catch (e) { /* older frontends */ }
      }
    }
  });
  await page.keyboard.press('Escape');
  for (const file of job.files) {
    const workflow = JSON.parse(readFileSync(file, 'utf8'));
    const name = path.basename(file, '.json');
    const before = pageErrors.length;
    const result = await page.evaluate(async (workflow) => {
      const app = window.app;
      await app.loadGraphData(structuredClone(workflow), true, true, null,
                              { showMissingNodesDialog: false, showMissingModelsDialog: false });
      const { output } = await app.graphToPrompt();
      const sizes = app.graph._nodes.map((n) => ({
        id: n.id, type: n.type, size: [...n.size], min: [...n.computeSize()],
        widgets: (n.widgets || []).map((w) => w.name),
      }));
      return { prompt: output, workflow: app.graph.serialize(), sizes };
    }, workflow);
    result.errors = pageErrors.slice(before);
    if (job.screenshots) {
      // Size the page so the whole graph (nodes and groups) fits at a legible zoom, clear of
      // the menus and panels, then fit it there.
      const free = { left: 80, top: 110, right: 30, bottom: 90 };
      const bounds = await page.evaluate(() => {
        const app = window.app;
        const boxes = [...app.graph._nodes.map((n) => [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]),
                       ...app.graph._groups.map((g) => [...g._bounding ?? g.bounding])];
        const x0 = Math.min(...boxes.map((b) => b[0])), y0 = Math.min(...boxes.map((b) => b[1]));
        const x1 = Math.max(...boxes.map((b) => b[0] + b[2])), y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
        return { x0, y0, x1, y1 };
      });
      const zoom = Math.min(job.zoom ?? 0.8, 4096 / (bounds.x1 - bounds.x0));
      await page.setViewportSize({
        width: Math.max(1024, Math.ceil((bounds.x1 - bounds.x0) * zoom) + free.left + free.right),
        height: Math.max(700, Math.ceil((bounds.y1 - bounds.y0) * zoom) + free.top + free.bottom),
      });
      await page.waitForTimeout(300);
      const clip = await page.evaluate(({ bounds, free, zoom }) => {
        const app = window.app;
        const rect = app.canvas.canvas.getBoundingClientRect();
        app.canvas.ds.scale = zoom;
        app.canvas.ds.offset = [(free.left - rect.left) / zoom - bounds.x0, (free.top - rect.top) / zoom - bounds.y0];
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);
        const pad = 10;
        return { x: free.left - pad, y: free.top - pad,
                 width: (bounds.x1 - bounds.x0) * zoom + 2 * pad, height: (bounds.y1 - bounds.y0) * zoom + 2 * pad };
      }, { bounds, free, zoom });
      await page.waitForTimeout(500);
      result.screenshot = path.join(job.screenshots, `${name}.png`);
      await page.screenshot({ path: result.screenshot, clip });
    }
    results[file] = result;
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
