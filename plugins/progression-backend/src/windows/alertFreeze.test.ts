import {
  alertNames,
  alertQuery,
  checkAlertEntry,
  describeFiring,
} from './alertFreeze';

describe('alert freezes', () => {
  it('queries firing ALERTS by name and by selector', () => {
    expect(alertQuery(['HighErrorRatio', 'job:Down'])).toBe(
      'ALERTS{alertstate="firing",alertname=~"HighErrorRatio|job:Down"}',
    );
    expect(
      alertQuery([
        'HighErrorRatio',
        ' {severity="page", namespace=~"prod.*"} ',
      ]),
    ).toBe(
      'ALERTS{alertstate="firing",alertname=~"HighErrorRatio"} or ALERTS{alertstate="firing",severity="page", namespace=~"prod.*"}',
    );
  });

  it('accepts names and label-matcher selectors only', () => {
    expect(checkAlertEntry('HighErrorRatio')).toBeUndefined();
    expect(checkAlertEntry('{a="b",c!="d",e=~"f\\"g",}')).toBeUndefined();
    for (const bad of [
      'High-Error',
      '{a="b"} or up',
      '{a="b"}) or vector(1',
      '{a=b}',
      '{__name__="up"}',
      '{}',
    ]) {
      expect(checkAlertEntry(bad)).toBeDefined();
    }
  });

  it('knows which alerts the entries name exactly, to check that rules exist for them', () => {
    expect(
      alertNames([
        'HighErrorRatio',
        '{alertname="DemoHighErrorRatio",namespace="staging"}',
        '{ namespace="x", alertname = "Quoted\\"Name" }',
        '{alertname=~"Any.*"}',
        '{alertname!="Other",severity="page"}',
        '{myalertname="NotIt"}',
        'HighErrorRatio',
      ]),
    ).toEqual(['HighErrorRatio', 'DemoHighErrorRatio', 'Quoted"Name']);
  });

  it('names the firing alerts with their labels', () => {
    expect(
      describeFiring([
        {
          __name__: 'ALERTS',
          alertname: 'HighErrorRatio',
          alertstate: 'firing',
          namespace: 'staging',
        },
        { alertname: 'Down' },
      ]),
    ).toBe('Down, HighErrorRatio (namespace=staging)');
  });
});
