module.exports = require('@backstage/cli/config/eslint-factory')(__dirname, {
  rules: { 'import/no-cycle': 'error' },
});
