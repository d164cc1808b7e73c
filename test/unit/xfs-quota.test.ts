// The quota limits as xfs_quota dumps them, read before xfs_quota restore (which silently skips what it cannot read) gets them.
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { missingQuotas, parseQuotaDump, quotaAccounting, quotaMountOptions } from '../../src/system/xfs-quota.js';

describe('which quotas a mount keeps', () => {
  it('reads them from the super options the kernel shows, enforced or only accounted', () => {
    const options = 'rw,attr2,inode64,logbufs=8,logbsize=32k,usrquota,prjquota,gqnoenforce'.split(',');
    expect(quotaAccounting(options)).toEqual({ user: 'enforced', group: 'accounted', project: 'enforced' });
  });
  it('finds none on a mount without quotas', () => {
    expect(quotaAccounting('rw,attr2,inode64,noquota'.split(','))).toEqual({});
  });
  it('gives the mount options that turn them on again, in one order', () => {
    expect(quotaMountOptions({ project: 'enforced', user: 'enforced', group: 'accounted' })).toBe('usrquota,gqnoenforce,prjquota');
    expect(quotaMountOptions(undefined)).toBe('');
  });
  it('names the kinds a mount lacks', () => {
    expect(missingQuotas({ user: 'enforced', project: 'enforced' }, { user: 'accounted' })).toEqual(['project']);
    expect(missingQuotas(undefined, {})).toEqual([]);
  });
});

describe('a dump of quota limits', () => {
  // As xfs_quota 6.1 writes it: the fs line before every ID.
  const dump =
    'fs = /dev/mapper/vg0-home\n1002         102400  122880       0       0\nfs = /dev/mapper/vg0-home\n1001          4096   20480      50     100\n';

  it('reads every ID and its limits, in ID order', () => {
    expect(parseQuotaDump('user', dump, 'f')).toEqual({ kind: 'user', rows: ['1001 4096 20480 50 100', '1002 102400 122880 0 0'] });
  });
  it('reads the realtime pair of later xfsprogs', () => {
    expect(parseQuotaDump('group', 'fs = /dev/sdb1\n7 1 2 3 4 5 6\n', 'f').rows).toEqual(['7 1 2 3 4 5 6']);
  });
  it('leaves out an ID whose limits are all zero, as xfs_quota does', () => {
    expect(parseQuotaDump('user', 'fs = /dev/sdb1\n5 0 0 0 0\n', 'f').rows).toEqual([]);
  });
  it('takes an empty dump as no limits', () => {
    expect(parseQuotaDump('project', '', 'f').rows).toEqual([]);
  });

  const refused: Array<[string, string, RegExp]> = [
    ['a dump that does not start with its fs line', '1001 1 2 3 4\n', /line 1 is not "fs = <device>"/],
    ['a row with a word in it', 'fs = /dev/sdb1\n1001 1 2 x 4\n', /line 2 is not an ID and its limits/],
    ['a row with too few numbers', 'fs = /dev/sdb1\n1001 1 2 3\n', /line 2 is not an ID/],
    ['a negative limit', 'fs = /dev/sdb1\n1001 -1 2 3 4\n', /line 2 is not an ID/],
    ['an xfs_quota command', 'fs = /dev/sdb1\nlimit -u bhard=0 1001\n', /line 2 is not an ID/],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what}, naming the file`, () => {
      let thrown: unknown;
      try {
        parseQuotaDump('user', text, '/home/xfsdump_quotas');
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(UserError);
      expect((thrown as UserError).message).toMatch(message);
      expect((thrown as UserError).message).toMatch(/^the user quota limits in the backup cannot be read/);
      expect(String((thrown as UserError).where)).toBe('/home/xfsdump_quotas');
    });
  }
});
