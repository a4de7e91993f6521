import {
  checkQueryTemplate,
  escapePromQLString,
  escapeRegex,
  renderQuery,
} from './promql';

const values = {
  namespace: 'staging',
  app: 'payments-api',
  stage: 'staging',
  entity: 'payments-api',
  version: '1.4.2',
};

describe('renderQuery', () => {
  it('fills label values, regex-escaping inside =~ matchers', () => {
    expect(
      renderQuery(
        'sum(rate(x{namespace="{{ namespace }}",app=~"{{ app }}|other",version="{{version}}"}[1m]))',
        { ...values, app: 'payments.api' },
      ),
    ).toBe(
      'sum(rate(x{namespace="staging",app=~"payments\\\\.api|other",version="1.4.2"}[1m]))',
    );
  });

  it.each([
    ['app', 'x"} or vector(1) or up{job="'],
    ['namespace', 'Staging'],
    ['namespace', 'a b'],
    ['entity', 'x\\'],
    ['version', '1.0; rm -rf /'],
    ['version', ''],
  ])('refuses %s value %p', (name, value) => {
    expect(() =>
      renderQuery(
        'up{job="{{ app }}",n="{{ namespace }}",e="{{ entity }}",v="{{ version }}"}',
        {
          ...values,
          [name]: value,
        },
      ),
    ).toThrow(/refusing/);
  });

  it('refuses placeholders outside a quoted label value, and unknown ones', () => {
    expect(() => checkQueryTemplate('up{job={{ app }}}')).toThrow(
      /must be inside a "double-quoted" label value/,
    );
    expect(() => checkQueryTemplate('up{job=`{{ app }}`}')).toThrow(
      /must be inside/,
    );
    expect(() => checkQueryTemplate('up{job="{{ token }}"}')).toThrow(
      /unknown placeholder/,
    );
    expect(() => checkQueryTemplate('up{job="x}')).toThrow(/unterminated/);
  });

  it('leaves placeholders of other quotes in the template alone', () => {
    expect(
      renderQuery(
        `label_replace(up{job='{{ app }}'}, "a", "$1", "b", "(.*)")`,
        values,
      ),
    ).toBe(`label_replace(up{job='payments-api'}, "a", "$1", "b", "(.*)")`);
  });
});

describe('escaping', () => {
  it('escapes what would end a PromQL string', () => {
    expect(escapePromQLString('a"b\\c\'d\ne')).toBe('a\\"b\\\\c\\\'d\\ne');
  });

  it('escapes regex metacharacters', () => {
    expect(escapeRegex('a.b*c(d)|e')).toBe('a\\.b\\*c\\(d\\)\\|e');
  });
});
