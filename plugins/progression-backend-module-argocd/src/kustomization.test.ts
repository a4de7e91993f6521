import { overlayImage, parseImage, setOverlayImage } from './kustomization';

const overlay = `# Development overlay: kept by the platform team
resources:
  - ../../base
namespace: checkout-dev   # the stage's namespace
images:
  - name: registry.example/sidecar
    newTag: "2.0"
  - name: registry.example/checkout
    newTag: 1.0.0 # set by Progression
replicas:
  - name: checkout
    count: 1
`;

describe('parseImage', () => {
  it.each([
    [
      'registry.example/checkout:1.1.0',
      { name: 'registry.example/checkout', tag: '1.1.0' },
    ],
    ['registry:5000/team/app', { name: 'registry:5000/team/app' }],
    ['registry:5000/team/app:2', { name: 'registry:5000/team/app', tag: '2' }],
    ['app:1@sha256:abc', { name: 'app', tag: '1', digest: 'sha256:abc' }],
  ])('%s', (image, ref) => {
    expect(parseImage(image)).toEqual(ref);
  });
});

describe('setOverlayImage', () => {
  it("changes only the entry's newTag, keeping comments, order and quoting", () => {
    const next = setOverlayImage(overlay, 'registry.example/checkout:1.1.0');
    expect(next).toBe(
      overlay.replace('newTag: 1.0.0 # set', 'newTag: 1.1.0 # set'),
    );
    expect(overlayImage(next, 'registry.example/checkout')).toBe(
      'registry.example/checkout:1.1.0',
    );
  });

  it('adds an entry as kustomize edit set image does when none names the image', () => {
    const next = setOverlayImage(
      'resources:\n  - ../../base\n',
      'registry.example/checkout:1.1.0',
    );
    expect(next).toBe(
      'resources:\n  - ../../base\nimages:\n- name: registry.example/checkout\n  newTag: 1.1.0\n',
    );
  });

  it('appends an entry to the list there is, indented as its entries are', () => {
    const next = setOverlayImage(overlay, 'registry.example/worker:3.1.4');
    expect(next).toBe(
      overlay.replace(
        '    newTag: 1.0.0 # set by Progression\n',
        '    newTag: 1.0.0 # set by Progression\n  - name: registry.example/worker\n    newTag: 3.1.4\n',
      ),
    );
  });

  it('keeps a quoted value quoted, and quotes a tag YAML would read as a number', () => {
    expect(setOverlayImage(overlay, 'registry.example/sidecar:2.1')).toBe(
      overlay.replace('newTag: "2.0"', 'newTag: "2.1"'),
    );
    expect(setOverlayImage(overlay, 'registry.example/checkout:2')).toBe(
      overlay.replace('newTag: 1.0.0 # set', 'newTag: "2" # set'),
    );
  });

  it('a tag after a digest takes its line', () => {
    const pinned =
      'images:\n  - name: registry.example/checkout\n    digest: sha256:0123\n';
    expect(setOverlayImage(pinned, 'registry.example/checkout:1.2.0')).toBe(
      'images:\n  - name: registry.example/checkout\n    newTag: 1.2.0\n',
    );
  });

  it('a digest replaces the tag', () => {
    const next = setOverlayImage(
      overlay,
      'registry.example/checkout@sha256:0123',
    );
    expect(overlayImage(next, 'registry.example/checkout')).toBe(
      'registry.example/checkout@sha256:0123',
    );
    expect(next).not.toContain('1.0.0');
  });

  it('finds an entry that renamed the image', () => {
    const renamed =
      'images:\n  - name: checkout\n    newName: registry.example/checkout\n    newTag: 1.0.0\n';
    expect(setOverlayImage(renamed, 'registry.example/checkout:1.2.0')).toBe(
      renamed.replace('1.0.0', '1.2.0'),
    );
  });

  it('refuses what is not a Kustomization, naming the file', () => {
    expect(() =>
      setOverlayImage('images: [', 'a:1', 'overlays/dev/kustomization.yaml'),
    ).toThrow(/^overlays\/dev\/kustomization.yaml is not valid YAML/);
    expect(() => setOverlayImage('- a\n', 'a:1', 'k.yaml')).toThrow(
      'k.yaml is not a Kustomization (not a YAML mapping)',
    );
  });
});
