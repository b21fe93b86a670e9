/* Browser text of the audit page, in English and Korean. */
(function () {
  'use strict';
  window.AxI18n.extend({
    en: {
      'audit.title': 'axline — audit trail',
      'audit.heading': 'Audit trail',
      'audit.help': 'Every login, user and role change, write to a machine, review and export, newest first. ' +
        'Each entry carries the hash of the one before it.',
      'audit.verify': 'Verify the chain',
      'audit.ok': 'Chain intact: {n} entries.',
      'audit.broken': 'Chain BROKEN: {problems}',
      'audit.export_jsonl': 'Export (JSON lines)',
      'audit.export_syslog': 'Export (syslog)',
      'audit.size': 'Size {mb} MiB of {max} MiB ({state})',
      'audit.col.ts': 'Time (UTC)', 'audit.col.who': 'Who', 'audit.col.role': 'Role',
      'audit.col.action': 'Action', 'audit.col.target': 'Target', 'audit.col.old': 'Old',
      'audit.col.new': 'New', 'audit.col.result': 'Result', 'audit.col.from': 'From',
      'audit.back': 'Line dashboard',
      'audit.failed': 'Could not load the audit trail: {error}',
    },
    ko: {
      'audit.title': 'axline — 감사 기록',
      'audit.heading': '감사 기록',
      'audit.help': '모든 로그인, 사용자·역할 변경, 설비 쓰기, 검토, 내보내기를 최신순으로 보여 줍니다. ' +
        '각 항목은 바로 앞 항목의 해시를 담고 있습니다.',
      'audit.verify': '체인 검증',
      'audit.ok': '체인 정상: {n}개 항목.',
      'audit.broken': '체인 손상: {problems}',
      'audit.export_jsonl': '내보내기 (JSON lines)',
      'audit.export_syslog': '내보내기 (syslog)',
      'audit.size': '크기 {mb} MiB / {max} MiB ({state})',
      'audit.col.ts': '시각 (UTC)', 'audit.col.who': '사용자', 'audit.col.role': '역할',
      'audit.col.action': '동작', 'audit.col.target': '대상', 'audit.col.old': '이전 값',
      'audit.col.new': '새 값', 'audit.col.result': '결과', 'audit.col.from': '접속 위치',
      'audit.back': '라인 대시보드',
      'audit.failed': '감사 기록을 불러오지 못했습니다: {error}',
    },
  });
})();
