/* Korean and English text of the data path's own (system) events: store-and-forward, disk space,
   clocks and historian damage. Adds its keys to the catalog of i18n.js; load it right after i18n.js. */
(function () {
  'use strict';
  const en = {
    'kind.system': 'System',
    'event.store.offline': 'Storage ({store}) unavailable: {error}. Readings are buffered on disk.',
    'event.store.recovered': 'Storage ({store}) is back; everything buffered was delivered.',
    'event.store.quarantined': 'Storage ({store}): a batch of {readings} readings failed repeatedly ({reason}); set aside in {file}.',
    'event.store.quarantine_failed': 'Storage ({store}): could not set aside a failing batch ({reason}).',
    'event.store.refused': 'Storage ({store}): readings refused ({readings} so far): destination and buffer are both full.',
    'event.store.spool_failed': 'Storage ({store}): cannot buffer on disk ({error}).',
    'event.system.clock_implausible': '{tag}: timestamp {skew_s} s away from arrival; stored as "bad timestamp". Check the machine clock.',
    'event.system.disk_filling': 'Disk of {folder} is {used_percent}% full.',
    'event.system.disk_full': 'Disk of {folder} is {used_percent}% full: readings that cannot be stored are refused. Free space now.',
    'event.system.disk_relief_failed': 'Freeing space on the disk of {folder} failed: see the server log.',
    'event.system.disk_ok': 'Disk of {folder} is back to {used_percent}% full.',
    'event.system.disk_unreadable': 'Cannot measure the free space of {folder}.',
    'event.system.disk_relief_failed': 'Freeing space on the disk of {folder} failed.',
    'event.system.retention_freed': 'Disk nearly full: retention removed {readings} old readings.',
    'event.system.historian_damage': 'Historian file {file} is damaged at offset {offset} ({reason}); kept out of queries.',
  };
  const ko = {
    'kind.system': '시스템',
    'event.store.offline': '저장소({store}) 사용 불가: {error}. 데이터를 디스크에 임시 보관합니다.',
    'event.store.recovered': '저장소({store}) 복구: 보관했던 데이터를 모두 저장했습니다.',
    'event.store.quarantined': '저장소({store}): 데이터 {readings}건 묶음이 반복 실패({reason})하여 {file}에 격리했습니다.',
    'event.store.quarantine_failed': '저장소({store}): 실패한 묶음을 격리하지 못했습니다({reason}).',
    'event.store.refused': '저장소({store}): 저장 대상과 임시 보관 공간이 모두 가득 차 데이터를 거부했습니다(지금까지 {readings}건).',
    'event.store.spool_failed': '저장소({store}): 디스크에 임시 보관할 수 없습니다({error}).',
    'event.system.clock_implausible': '{tag}: 타임스탬프가 수신 시각과 {skew_s}초 차이 나 "시각 불량"으로 저장했습니다. 장비 시계를 확인하세요.',
    'event.system.disk_filling': '{folder} 디스크 사용률 {used_percent}%.',
    'event.system.disk_full': '{folder} 디스크 사용률 {used_percent}%: 저장할 수 없는 데이터는 거부됩니다. 지금 공간을 확보하세요.',
    'event.system.disk_relief_failed': '{folder} 디스크 공간 확보에 실패했습니다: 서버 로그를 확인하세요.',
    'event.system.disk_ok': '{folder} 디스크 사용률이 {used_percent}%로 내려갔습니다.',
    'event.system.disk_unreadable': '{folder}의 남은 공간을 확인할 수 없습니다.',
    'event.system.disk_relief_failed': '{folder} 디스크의 공간 확보에 실패했습니다.',
    'event.system.retention_freed': '디스크 부족: 보존 기간이 지난 데이터 {readings}건을 삭제했습니다.',
    'event.system.historian_damage': '히스토리안 파일 {file}의 오프셋 {offset}이 손상되었습니다({reason}). 조회에서 제외합니다.',
  };
  Object.assign(window.AxI18n.tables.en, en);
  Object.assign(window.AxI18n.tables.ko, ko);
})();
