#!/usr/bin/env python3
"""Writes sample-province.csv: a made-up province with the real shape of the mission's one:
2 province rooms, 11 districts, 200 communes, each with a room terminal. Names are generated
(Vietnamese words with diacritics), not real places. Deterministic: run it again, same file."""

import csv
import sys

FIRST = ["Tân", "Phú", "An", "Hòa", "Bình", "Thạnh", "Long", "Mỹ", "Đông", "Tây",
         "Nam", "Bắc", "Thuận", "Lộc", "Phước", "Hưng", "Quang", "Trung", "Sơn", "Hải"]
SECOND = ["Lợi", "Thành", "Hiệp", "Xuân", "Đức", "Nghĩa", "Khánh", "Điền", "Hà", "Lâm",
          "Vĩnh", "Phong", "Thịnh", "Tiến", "Hồng", "Cường", "Yên", "Ninh", "Châu", "Giang"]
DISTRICTS = ["Đông Sơn", "Tây Hòa", "Nam Đàn", "Bắc Bình", "Phú Lộc", "Tân Kỳ",
             "Hưng Nguyên", "Quảng Điền", "Lạc Dương", "Mường Tè", "Ea Súp"]


def main(out):
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["code", "name", "level", "parent_code", "terminal_id"])
    w.writerow(["T01", "Văn phòng Tỉnh ủy", "province", "", "rt-t01"])
    w.writerow(["T02", "Ủy ban nhân dân tỉnh", "province", "", "rt-t02"])
    names = [f"{a} {b}" for b in SECOND for a in FIRST]
    commune = 0
    for d, district in enumerate(DISTRICTS, start=1):
        code = f"H{d:02}"
        w.writerow([code, f"Huyện {district}", "district", "T02", f"rt-{code.lower()}"])
        # 200 communes over 11 districts: the first two have 19, the others 18.
        for _ in range(19 if d <= 2 else 18):
            commune += 1
            c = f"X{commune:03}"
            w.writerow([c, f"Xã {names[commune * 7 % len(names)]}", "commune", code,
                        f"rt-{c.lower()}"])
    assert commune == 200


if __name__ == "__main__":
    main(sys.stdout)
