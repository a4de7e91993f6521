import { test as base, expect } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';

/*
 * The end-to-end tests' `test`: Playwright's, plus a check that runs in
 * every test: the plugin's own components printed no React warning (a
 * missing key, a <div> inside a <p>, …) in the browser console.
 *
 * React's development build prints each warning with the component stack
 * that caused it ("at StageCard (http://…)"). A warning is the plugin's when
 * that stack names one of the plugin's components: every capitalised
 * function of plugins/progression/src, read from the sources here so that
 * a new component is covered without editing this list.
 */

const PLUGIN_SRC = path.resolve(__dirname, '../../../plugins/progression/src');

function componentNames(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return componentNames(file);
    if (!/\.tsx$/.test(entry.name) || /\.test\.tsx$/.test(entry.name)) {
      return [];
    }
    const source = fs.readFileSync(file, 'utf8');
    return [...source.matchAll(/function ([A-Z]\w+)\s*[(<]/g)].map(m => m[1]);
  });
}

const PLUGIN_COMPONENT = new RegExp(
  `\\bat (${[...new Set(componentNames(PLUGIN_SRC))].join('|')})\\b`,
);

/** Whether a console message is a React warning raised in the plugin. */
export function isPluginWarning(text: string): boolean {
  return /Warning:/.test(text) && PLUGIN_COMPONENT.test(text);
}

export const test = base.extend<{ pluginWarnings: string[] }>({
  pluginWarnings: [
    async ({ page }, use) => {
      const warnings: string[] = [];
      page.on('console', message => {
        if (message.type() !== 'warning' && message.type() !== 'error') {
          return;
        }
        const text = message.text();
        if (isPluginWarning(text)) warnings.push(text);
      });
      await use(warnings);
      expect(
        warnings,
        'React warnings from the plugin in the browser console',
      ).toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };
export type { APIRequestContext, Locator, Page } from '@playwright/test';
