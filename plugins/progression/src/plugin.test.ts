import { progressionPlugin } from './plugin';

describe('progression', () => {
  it('should export plugin', () => {
    expect(progressionPlugin).toBeDefined();
  });
});
