import AxeBuilder from '@axe-core/playwright';
import fs from 'node:fs';
import path from 'node:path';
import {
  test,
  expect,
  Locator,
  releaseToDevelopment,
  signInAsGuest,
} from './fixtures';

/*
 * The Environments tab at the widths people use — a laptop (1440 × 900,
 * 1280 × 800) and a phone (390 × 844) — with a history whose reasons are
 * long: words stay whole, the reason column wraps or truncates with the
 * whole text in a tooltip, the stage cards stack on the phone and stay
 * inside it, and axe finds nothing serious or critical. Versions
 * 1.9.x-<this run> are this file's own.
 */

const IMAGES = path.resolve(__dirname, '../../../docs/images');

const WIDTHS = [
  { width: 1440, height: 900 },
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

/**
 * How many lines each element's text takes in the page as laid out: the
 * tops of its text's line boxes that lie more than half a line apart (an
 * icon beside the text is not a line). A word broken in two takes two.
 */
async function lineCounts(elements: Locator): Promise<Record<string, number>> {
  return elements.evaluateAll(nodes =>
    Object.fromEntries(
      nodes.map(node => {
        const half = parseFloat(getComputedStyle(node).lineHeight) / 2 || 8;
        const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
        const tops: number[] = [];
        for (let text = walker.nextNode(); text; text = walker.nextNode()) {
          if (!text.textContent?.trim()) continue;
          const range = document.createRange();
          range.selectNodeContents(text);
          for (const r of range.getClientRects()) {
            if (r.width > 0) tops.push(r.top);
          }
        }
        tops.sort((a, b) => a - b);
        const lines = tops.filter((t, i) => i === 0 || t - tops[i - 1] > half);
        return [node.textContent?.trim() ?? '', lines.length];
      }),
    ),
  );
}

test('the Environments tab is readable at 1440, 1280 and 390 px and has no serious accessibility violations', async ({
  page,
  request,
}, testInfo) => {
  test.setTimeout(300_000);
  // A history with a long reason: a release that fails its smoke checks.
  // A suffix of this run's own, so that the test can run again on a demo
  // that has its releases already.
  const run = Date.now().toString(36).slice(-4);
  const unhealthy = `1.9.1-${run}-unhealthy`;
  await releaseToDevelopment(request, `1.9.0-${run}`, 'succeeded');
  await releaseToDevelopment(request, unhealthy, 'rolled-back');
  await releaseToDevelopment(request, `1.9.2-${run}`, 'succeeded');

  await signInAsGuest(page);
  for (const size of WIDTHS) {
    await page.setViewportSize(size);
    await page.goto('/catalog/default/component/payments-api/environments');
    const history = page.getByRole('table', { name: 'Promotion history' });
    await expect(history).toContainText(unhealthy);
    const cards = page
      .getByRole('list', { name: 'Stages of pipeline Standard' })
      .locator('[data-testid^="stage-"]');
    await expect(cards).toHaveCount(3);
    await expect(cards.nth(1)).toContainText('Healthy');

    // Headings and the cells of every column but "Why" on one line.
    const oneLine = history.locator(
      'th, tbody td:not(:nth-child(8)):not(:last-child)',
    );
    const lines = await lineCounts(oneLine);
    expect(
      Object.entries(lines).filter(([, n]) => n > 1),
      `cells broken over lines at ${size.width} px`,
    ).toEqual([]);

    // "Why" wraps to two lines at most (one on a phone); the tooltip has
    // all of it.
    const row = history.getByRole('row').filter({ hasText: unhealthy }).first();
    const why = row.locator('td').nth(7).locator('span').first();
    const box = await why.boundingBox();
    const lineHeight = await why.evaluate(el =>
      parseFloat(getComputedStyle(el).lineHeight),
    );
    expect(box!.height).toBeLessThanOrEqual(
      (size.width < 600 ? 1 : 2) * lineHeight + 1,
    );
    await why.hover();
    await expect(page.getByRole('tooltip')).toContainText(
      /smoke: GET \/healthz failed: answered 503/,
    );
    await page.mouse.move(0, 0);

    // The cards: side by side on a laptop, one above the other on a phone,
    // never wider than the screen.
    const boxes = await Promise.all(
      [0, 1, 2].map(async i => (await cards.nth(i).boundingBox())!),
    );
    for (const b of boxes) {
      expect(b.x + b.width).toBeLessThanOrEqual(size.width);
    }
    if (size.width < 600) {
      expect(boxes[1].y).toBeGreaterThanOrEqual(boxes[0].y + boxes[0].height);
      expect(boxes[2].y).toBeGreaterThanOrEqual(boxes[1].y + boxes[1].height);
    } else {
      expect(boxes[1].y).toBe(boxes[0].y);
      expect(boxes[2].y).toBe(boxes[0].y);
    }
    // The card titles and states are whole words.
    const cardLines = await lineCounts(
      cards.locator('h3, [role="status"] span'),
    );
    expect(
      Object.entries(cardLines).filter(([, n]) => n > 1),
      `card words broken at ${size.width} px`,
    ).toEqual([]);

    await page.screenshot({
      path: testInfo.outputPath(`environments-${size.width}.png`),
      fullPage: true,
    });
    await page.screenshot({
      path: path.join(IMAGES, `environments-${size.width}.png`),
      fullPage: true,
    });

    // The Overview's cards at the same width.
    await page.goto('/catalog/default/component/payments-api');
    const where = page.getByRole('table', { name: 'Where is my release' });
    await expect(where).toContainText('Development');
    const whereLines = await lineCounts(where.locator('th, td'));
    expect(
      Object.entries(whereLines).filter(([, n]) => n > 1),
      `"Where is my release" broken at ${size.width} px`,
    ).toEqual([]);
    await expect(
      page.getByRole('region', { name: 'Delivery to Production' }),
    ).toBeVisible();
    await page.screenshot({
      path: testInfo.outputPath(`overview-${size.width}.png`),
      fullPage: true,
    });
  }

  // axe on the tab as a laptop shows it: nothing serious or critical.
  await page.setViewportSize(WIDTHS[0]);
  await page.goto('/catalog/default/component/payments-api/environments');
  await expect(
    page.getByRole('table', { name: 'Promotion history' }),
  ).toBeVisible();
  await expect(
    page.getByRole('region', { name: 'Delivery insights' }),
  ).toBeVisible();
  const results = await new AxeBuilder({ page })
    .include('main')
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const serious = results.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map(n => n.target.join(' ')),
    }));
  fs.writeFileSync(
    testInfo.outputPath('axe-violations.json'),
    JSON.stringify(results.violations, null, 2),
  );
  expect(serious).toEqual([]);
});

test("checkout's GitOps cards stay inside a laptop's and a phone's screen", async ({
  page,
}, testInfo) => {
  await signInAsGuest(page);
  for (const size of WIDTHS.slice(1)) {
    await page.setViewportSize(size);
    await page.goto('/catalog/default/component/checkout/environments');
    const sections = page.getByTestId('gitops-section');
    await expect(sections).toHaveCount(3);
    await expect(sections.first().getByTestId('gitops-commit')).toBeVisible();
    // No element of a GitOps section reaches past the screen's right edge
    // (long image references and commit subjects wrap), and the page does
    // not scroll sideways.
    const beyond = await sections.evaluateAll(
      (nodes, width) =>
        nodes
          .flatMap(node => [node, ...node.querySelectorAll('*')])
          .filter(el => el.getBoundingClientRect().right > width + 0.5)
          .map(el => `${el.tagName}: ${el.textContent?.slice(0, 80)}`),
      size.width,
    );
    expect(beyond, `GitOps sections past ${size.width} px`).toEqual([]);
    expect(
      await page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth,
      ),
    ).toBeLessThanOrEqual(0);
    await page.screenshot({
      path: testInfo.outputPath(`gitops-${size.width}.png`),
      fullPage: true,
    });
  }
});
