"""Synthetic sample data: the four agencies' exports of the quarantine loop, plus the exact truth.

Owns `generate_sample()` (behind `linkage sample`). It invents a population of inbound travelers
(made-up names, documents, phones and addresses; no real people), their true chain events, and
writes what each agency would have exported about them as of a time:

  immigration.csv  border entry records (UTF-8, one upper-case Latin name column, given name first)
  health.csv       registration rows and transfer/quarantine rows in one file (UTF-8 with BOM)
  police.csv       residence registrations, GB18030, CRLF; 社区移交登记 rows are the handover
  commerce.xlsx    foreign-enterprise employee register (no chain events)
  truth_entities.csv  source,record_id,person_id  (every exported record exactly once)
  truth_flags.csv     person_id,flag,stage        (stage empty for IDENTITY_CONFLICT)

The truth flags are computed by evaluating the default chain (configs/chain.toml) on the events
the exported records actually carry, as of `as_of` (earliest event per stage), so incidental cases
(a traveler mid-chain, a duplicate with a later time) come out right. Corruption only ever touches
identities (names, dates of birth, documents, phones); event times and districts are exact.

Population: 62% Chinese citizens (hanzi + pinyin, resident ID + passport), 30% foreigners in ten
name pools (English, German, French, Russian, Arabic, Korean, Japanese, Vietnamese, Spanish,
Indian), 8% Hong Kong / Macao / Taiwan residents with travel permits. 0.6% of people are in twin
pairs (same family name, date of birth, address and phone, different given names, same flight),
0.3% are in "namesake" pairs (same name, sex and date of birth, otherwise unrelated), 3% carry a
very common full name (王伟, 李娜, MUHAMMAD ALI, JOHN SMITH, ...) and surnames are Zipf-distributed.
4% of citizens and 8% of foreigners hold a re-issued passport: commerce shows the old number for
60% of them, health for 20% of foreigners, police for 10%. Who appears where: immigration every
arrival (none for a MISSING arrival); health a registration row once registered and a quarantine
row once transferred; police every handover plus other registrations for 3% of people and another
8% of non-citizens; commerce 35% of adult foreigners and 20% of adult HK/Macao/Taiwan residents.

Messiness, per record:
  name typo (insert / delete / substitute / transpose; for hanzi a homophone character):
      immigration 0.5%, health 3%, police 2%, commerce 2%
  transliteration variant (Muhammad/Mohammed, Sergei/Sergey, Müller/Mueller, ...), where the name
      has variants: health 35%, police 20%, commerce 35% (immigration always the passport spelling)
  Hong Kong / Taiwan romanization replaced by pinyin (CHEUNG/CHANG -> ZHANG): commerce 25%
  pinyin given names: "XIAOMING" 70%, "XIAO MING" 25%, "XIAO-MING" 5% (immigration)
  name order: immigration 3% family-first; police 2% of Latin names with family/given columns
      swapped; health Latin names 55% "John Smith", 43% "SMITH John", 2% "Smith John" (ambiguous);
      Spanish second surname dropped 40% outside immigration
  missing phone: health 6%, police 20%, commerce 10%; missing DOB: immigration 0.2%, health 3%,
      police 2%, commerce 5%; missing document: health 4%, police 1%, commerce 3%; missing
      nationality: health 3%, police 1%, commerce 2%; missing sex: health 1%
  day/month swap in DOB (only where the swapped date exists): health 1.5%, police 1.5%, commerce 2%
  document typo (one character substituted): health 1%, police 0.5%, commerce 1%;
      resident ID with a lower-case "x": health 3%
  duplicate records of one person (new record id, independently corrupted): immigration 0.5%,
      health registration 2% (half re-registered 1-20 min later), health quarantine 1%,
      police handover 1.5% (registered again 1-30 h later), commerce 2%
Record ids are unique within each file; no row is an exact copy of another.

Chain (times exact to the minute; police to the second): arrivals spread over the 45 days before
as_of, 1.5% within its last 8 hours (their later stages are PENDING). About 10% of travelers break
the chain, one injected break each: MISSING_STAGE (every stage; handover overdue most often),
OUT_OF_ORDER (health check before registration, transfer before health check, police handover
before release), GAP_EXCEEDED (registration, health check, transfer, check-in, handover),
EARLY_RELEASE (9-13.5 days), DISTRICT_MISMATCH (handover registered by a station of another
district), IDENTITY_CONFLICT (police holds another valid resident ID while another record still
shows the person's own, or a health record's DOB is 3-12 years off). Breaks that need a finished
quarantine are drawn only among travelers who arrived 15-20+ days before as_of, with the rate
scaled up so each type keeps its share.

Corruption profiles (CORRUPTIONS, `--corruption NAME`, default none) each add one class of hard
cases seen in real exports on top of this: unverified values, other document kinds, several
phones, re-issued passports, thin records, duplicate stage records, twins and families. Each works
on the uncorrupted exports with its own random stream (seed, profile name); profiles that edit the
same fields (phones; documents) take disjoint shares of the people from one shared draw, so a
profile does exactly the same whatever else is applied. Their new rows follow the row they copy
and get the next record ids; the truth files are computed from the corrupted exports. Without a
profile the files are byte-identical to the generator's alone.

Everything is vectorized with numpy / polars over all people; Python loops run only over small
vocabularies. Each concern draws from its own random stream derived from (seed, label), so the same
(people, seed, as_of) gives byte-identical files. Files are written under temporary names in the
output directory and renamed at the end.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["CORRUPTIONS", "SampleSummary", "corruption_names", "generate_sample", "DEFAULT_AS_OF", "STAGES",
           "resident_id_check_chars"]

DEFAULT_AS_OF = datetime(2026, 3, 31, 0, 0)
MAX_PEOPLE = 20_000_000

STAGES = ("arrival", "registration", "health_check", "transfer", "quarantine_start",
          "quarantine_end", "handover")
_MIN, _H, _D = 60, 3600, 86400
_AFTER = (-1, 0, 0, 0, 3, 4, 5)                       # the stage each gap is measured from
_MAX_GAP = (0, 2 * _H, 4 * _H, 6 * _H, 2 * _H, 0, 24 * _H)   # 0 = no maximum
_MIN_RELEASE = 14 * _D
_NEVER = np.iinfo(np.int64).max

COMMERCE_SHEET = "外籍员工"
FILES = {"immigration": "immigration.csv", "health": "health.csv", "police": "police.csv",
         "commerce": "commerce.xlsx"}


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    people: int
    files: dict[str, int]      # file name -> data rows written (exports and truth files)
    as_of: datetime
    corruptions: dict[str, tuple[int, int]] = field(default_factory=dict)  # profile -> (people
    # touched, people it could apply to); people added by a profile (twins) count as touched


# --------------------------------------------------------------------------- vocabulary

_DISTRICTS = ("东城区", "西城区", "朝阳区", "海淀区", "丰台区", "石景山区", "门头沟区", "房山区",
              "通州区", "顺义区", "昌平区", "大兴区", "怀柔区", "平谷区", "密云区", "延庆区")
_DISTRICT_W = (5, 6, 18, 16, 10, 3, 2, 5, 8, 6, 10, 8, 2, 2, 2, 1)
_DISTRICT_AREA = ("110101", "110102", "110105", "110108", "110106", "110107", "110109", "110111",
                  "110112", "110113", "110114", "110115", "110116", "110117", "110118", "110119")
_OTHER_AREAS = ("310101", "440106", "320102", "330106", "510104", "420102", "370102", "120101",
                "130102", "410105", "610113", "210102", "230102", "350203", "440304", "500103",
                "430102", "340104", "360102", "450103", "530102", "620102", "150102", "220102")

# code, district index, health desk at the port
_PORTS = (("PEK T3", 9, "首都机场T3卫生检疫点"), ("PEK T2", 9, "首都机场T2卫生检疫点"),
          ("PKX", 11, "大兴机场卫生检疫点"), ("BJW RAIL", 4, "北京西站口岸卫生检疫点"))

# airline, port index, origin groups served (0 citizens, 1 HK/MO, 2 TW, 3+ foreign pool), flights
_AIRLINES = (("CA", 0, "all", 8), ("MU", 2, "0 1 2 9 10", 5), ("CZ", 2, "0 10 12", 5),
             ("HU", 1, "0 3 4 6", 4), ("3U", 1, "0", 2), ("LH", 0, "4 5", 3),
             ("AF", 1, "5 7 11", 3), ("BA", 2, "3", 2), ("AA", 0, "3", 2), ("UA", 0, "3", 2),
             ("AC", 0, "3", 2), ("SU", 1, "6", 3), ("KE", 1, "8", 3), ("OZ", 0, "8", 3),
             ("JL", 1, "9", 3), ("NH", 0, "9", 3), ("VN", 1, "10", 2), ("EK", 0, "7 12", 2),
             ("QR", 2, "7 12", 2), ("EY", 0, "7", 1), ("TK", 2, "6 7", 2), ("IB", 0, "11", 1),
             ("AI", 0, "12", 2), ("CX", 0, "1", 4), ("NX", 0, "1", 2), ("BR", 1, "2", 3),
             ("CI", 1, "2", 3))
_TRAINS = ("Z98", "Q98")   # Hong Kong through trains, cleared at Beijing West

_COUNTRIES = (
    # iso2, iso3, English names, Chinese names, passport patterns (@ letter, # digit) and shares
    ("CN", "CHN", "China|People's Republic of China|PRC", "中国", "E########:.6 E@#######:.4"),
    ("HK", "HKG", "Hong Kong|Hong Kong SAR|Hong Kong, China", "中国香港|香港", ""),
    ("MO", "MAC", "Macao|Macau|Macao SAR", "中国澳门|澳门", ""),
    ("TW", "TWN", "Taiwan|Taiwan, China", "中国台湾|台湾", ""),
    ("US", "USA", "United States|USA|United States of America", "美国|美利坚合众国", "#########:.5 A########:.5"),
    ("GB", "GBR", "United Kingdom|UK|Great Britain", "英国|大不列颠及北爱尔兰联合王国", "#########:1"),
    ("CA", "CAN", "Canada", "加拿大", "@@######:1"),
    ("AU", "AUS", "Australia", "澳大利亚|澳洲", "P@#######:1"),
    ("NZ", "NZL", "New Zealand", "新西兰", "L@######:1"),
    ("IE", "IRL", "Ireland", "爱尔兰", "P@#######:1"),
    ("DE", "DEU", "Germany|Federal Republic of Germany", "德国|德意志联邦共和国", "C@@######:1"),
    ("AT", "AUT", "Austria", "奥地利", "P#######:1"),
    ("CH", "CHE", "Switzerland", "瑞士", "X#######:1"),
    ("FR", "FRA", "France", "法国", "##@@#####:1"),
    ("BE", "BEL", "Belgium", "比利时", "@@######:1"),
    ("RU", "RUS", "Russia|Russian Federation", "俄罗斯|俄罗斯联邦", "7########:1"),
    ("KZ", "KAZ", "Kazakhstan", "哈萨克斯坦", "N########:1"),
    ("BY", "BLR", "Belarus", "白俄罗斯", "@@#######:1"),
    ("EG", "EGY", "Egypt", "埃及", "A########:1"),
    ("SA", "SAU", "Saudi Arabia", "沙特阿拉伯|沙特", "@#######:1"),
    ("AE", "ARE", "United Arab Emirates|UAE", "阿联酋|阿拉伯联合酋长国", "@@#######:1"),
    ("JO", "JOR", "Jordan", "约旦", "@########:1"),
    ("PK", "PAK", "Pakistan", "巴基斯坦", "@@#######:1"),
    ("KR", "KOR", "Korea, Republic of|South Korea|Republic of Korea", "韩国|大韩民国", "M########:1"),
    ("JP", "JPN", "Japan", "日本", "T@#######:1"),
    ("VN", "VNM", "Viet Nam|Vietnam", "越南", "C#######:1"),
    ("ES", "ESP", "Spain", "西班牙", "P@@######:1"),
    ("MX", "MEX", "Mexico", "墨西哥", "G########:1"),
    ("AR", "ARG", "Argentina", "阿根廷", "@@@######:1"),
    ("CO", "COL", "Colombia", "哥伦比亚", "P@#######:1"),
    ("CL", "CHL", "Chile", "智利", "F########:1"),
    ("IN", "IND", "India", "印度", "@#######:1"),
)
_ISO = {c[0]: i for i, c in enumerate(_COUNTRIES)}
_PERMIT_PATTERN = {"HK": "H########", "MO": "M########", "TW": "########"}

# Foreign name pools: "canonical|variant|..."; the first spelling is the passport (ASCII) form.
_POOLS = {
    "english": dict(
        share=0.20, nats="US:.45 GB:.25 CA:.12 AU:.12 NZ:.03 IE:.03",
        male="John|Jon, James, Michael, David, Robert, William, Richard, Thomas, Mark, Paul, "
             "Steven|Stephen, Christopher, Daniel, Matthew, Andrew, George, Edward, Peter, Brian|Bryan, Kevin",
        female="Mary, Jennifer, Linda, Elizabeth, Sarah|Sara, Emily, Emma, Jessica, Laura, "
               "Catherine|Katherine|Kathryn, Rebecca, Anne|Ann, Helen, Amy, Rachel, Claire|Clare",
        family="Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Taylor, Anderson, Thomas, "
               "Moore, Martin, Jackson, White, Harris, Clark, Lewis, Walker, Young, Allen, King, Wright, "
               "Scott, Green, Baker, Adams, Hill, Campbell, Mitchell, Roberts, McDonald|MacDonald|Mcdonald, "
               "OBrien|O'Brien, Murphy, Thompson|Thomson"),
    "german": dict(
        share=0.08, nats="DE:.8 AT:.1 CH:.1",
        male="Thomas, Michael, Andreas, Stefan|Stephan, Christian, Markus|Marcus, Juergen|Jürgen|Jurgen, "
             "Klaus|Claus, Wolfgang, Frank, Joerg|Jörg|Jorg, Jan, Lukas|Lucas, Felix, Maximilian, Tobias, "
             "Matthias|Mathias",
        female="Sabine, Petra, Claudia, Andrea, Katrin|Kathrin|Catrin, Julia, Anna, Lena, Monika|Monica, "
               "Ursula, Birgit, Susanne, Stefanie|Stephanie",
        family="Mueller|Müller|Muller, Schmidt|Schmitt, Schneider, Fischer, Weber, Meyer|Meier|Maier, "
               "Wagner, Becker, Schulz, Hoffmann|Hofmann, Schaefer|Schäfer|Schafer, Koch, Bauer, Richter, "
               "Klein, Wolf, Schroeder|Schröder|Schroder, Neumann, Schwarz, Zimmermann, Braun, "
               "Krueger|Krüger|Kruger, Hartmann, Lange, Werner, Koehler|Köhler|Kohler"),
    "french": dict(
        share=0.06, nats="FR:.85 BE:.15",
        male="Jean, Pierre, Michel, Philippe, Nicolas, Francois|François, Laurent, Julien, Antoine, "
             "Jean-Pierre|Jean Pierre|Jeanpierre, Olivier, Sebastien|Sébastien, Frederic|Frédéric, "
             "Guillaume, Mathieu|Matthieu",
        female="Marie, Nathalie|Natalie, Isabelle, Sophie, Camille, Celine|Céline, Helene|Hélène, "
               "Chloe|Chloé, Lea|Léa, Manon, Marie-Claire|Marie Claire, Aurelie|Aurélie, Emilie|Émilie",
        family="Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau, Simon, "
               "Laurent, Lefebvre|Lefèvre|Lefevre, Michel, David, Bertrand, Roux, Vincent, Fournier, "
               "Girard, Lambert, Bonnet, Mercier, Faure, Rousseau"),
    "russian": dict(
        share=0.10, nats="RU:.8 KZ:.1 BY:.1",
        male="Aleksandr|Alexander|Aleksander|Alexandr, Sergei|Sergey|Serguei, Dmitrii|Dmitry|Dmitri|Dmitriy, "
             "Andrei|Andrey, Aleksei|Alexey|Alexei|Aleksey, Iurii|Yuri|Yury|Yuriy, Nikolai|Nikolay, Ivan, "
             "Mikhail, Vladimir, Maksim|Maxim, Evgenii|Evgeny|Yevgeny|Evgeniy, Pavel, Igor, Artem|Artyom",
        female="Tatiana|Tatyana|Tatjana, Natalia|Natalya|Nataliya, Iuliia|Yulia|Julia|Yuliya, Olga, "
               "Elena|Yelena, Anna, Mariia|Maria|Mariya, Ekaterina|Yekaterina, Irina, Svetlana, "
               "Anastasiia|Anastasia|Anastasiya, Kseniia|Ksenia|Kseniya",
        family="Ivanov, Smirnov, Kuznetsov|Kuznetcov, Popov, Sokolov, Lebedev, Kozlov, Novikov, Morozov, "
               "Petrov, Volkov, Solovev|Solovyov|Soloviev, Vasilev|Vasiliev|Vasilyev, Zaitsev|Zaytsev, "
               "Pavlov, Semenov|Semyonov, Golubev, Vinogradov, Bogdanov, Vorobev|Vorobyov|Vorobiev, "
               "Fedorov|Fyodorov, Mikhailov|Mikhaylov"),
    "arabic": dict(
        share=0.10, nats="EG:.25 SA:.2 AE:.1 JO:.1 PK:.35",
        male="Muhammad|Mohammed|Mohamed|Mohammad, Ahmed|Ahmad, Ali, Hassan|Hasan, Hussein|Hussain|Husain, "
             "Omar|Umar, Khaled|Khalid, Youssef|Yusuf|Yousef|Yousif, Abdullah|Abdallah, Mustafa|Mostafa, "
             "Ibrahim|Ebrahim, Tariq|Tarek|Tarik, Karim|Kareem, Hamza|Hamzah, Imran, Bilal",
        female="Fatima|Fatimah|Fatma, Aisha|Aysha|Ayesha, Mariam|Maryam|Miriam, Noor|Nour|Nur, "
               "Layla|Laila|Leila, Zainab|Zaynab|Zeinab, Sara|Sarah, Huda|Hoda, Amina|Aminah, "
               "Khadija|Khadijah, Salma, Yasmin|Yasmine|Jasmin",
        family="Ali, Hassan|Hasan, Khan, Ahmed|Ahmad, Abdelrahman|Abdel Rahman|Abdul Rahman, "
               "Elsayed|El-Sayed|Al-Sayed|Alsayed, Ibrahim, Mahmoud|Mahmood|Mahmud, Haddad, "
               "Nasser|Nasir|Naser, Saleh|Salih, Hussain|Hussein, Qureshi|Kureshi, Farouk|Farooq|Faruk, "
               "Mansour|Mansoor|Mansur, Aziz, Rashid|Rasheed, Sheikh|Shaikh, Malik, Iqbal"),
    "korean": dict(
        share=0.12, nats="KR:1",
        male="Minjun|Min-jun|Min Jun, Seojun|Seo-jun|Seo Jun, Jiho|Ji-ho|Ji Ho, Dohyun|Do-hyun|Do Hyun, "
             "Hyunwoo|Hyun-woo|Hyun Woo, Jaewon|Jae-won|Jae Won, Sungmin|Sung-min|Seong-min, "
             "Junho|Jun-ho|Joon-ho, Youngsoo|Young-soo|Yeong-su, Taehyun|Tae-hyun",
        female="Seoyeon|Seo-yeon|Seo Yeon, Jiwoo|Ji-woo|Ji Woo, Haeun|Ha-eun|Ha Eun, Minseo|Min-seo, "
               "Jimin|Ji-min|Ji Min, Soojin|Soo-jin|Su-jin, Eunji|Eun-ji, Yuna|Yu-na, Hyejin|Hye-jin, "
               "Jiyoung|Ji-young|Ji-yeong",
        family="Kim|Gim, Lee|Yi|Rhee, Park|Pak|Bak, Choi|Choe, Jung|Jeong|Chung, Kang, Cho|Jo, Yoon|Yun, "
               "Jang|Chang, Lim|Im, Han, Oh, Seo|Suh, Shin|Sin, Kwon|Gwon"),
    "japanese": dict(
        share=0.10, nats="JP:1",
        male="Hiroshi, Takashi, Kenji, Haruto, Yuto|Yuuto, Sota|Souta, Kaito, Ryota|Ryouta, Shota|Shouta, "
             "Yusuke|Yuusuke, Daiki, Kazuki, Takuya, Kenta, Shinji",
        female="Yuki, Yuko|Yuuko, Yui, Aoi, Sakura, Yuna, Kyoko|Kyouko, Haruka, Misaki, Ayaka, Mai, Naoko, "
               "Emi, Keiko, Rina",
        family="Sato|Satou|Satoh, Suzuki, Takahashi, Tanaka, Watanabe, Ito|Itou|Itoh, Yamamoto, Nakamura, "
               "Kobayashi, Kato|Katou|Katoh, Yoshida, Yamada, Sasaki, Yamaguchi, Matsumoto, Inoue, Kimura, "
               "Hayashi, Saito|Saitou|Saitoh, Shimizu, Ono|Ohno|Oono"),
    "vietnamese": dict(
        share=0.08, nats="VN:1",
        male="Van Thanh|Văn Thành, Van Hung|Văn Hùng, Minh Tuan|Minh Tuấn, Duc Minh|Đức Minh, "
             "Quoc Bao|Quốc Bảo, Thanh Hai|Thanh Hải, Van Nam|Văn Nam, Hoang Long|Hoàng Long, "
             "Van Duc|Văn Đức, Tuan Anh|Tuấn Anh",
        female="Thi Lan|Thị Lan, Thi Huong|Thị Hương, Thi Mai|Thị Mai, Thi Thu|Thị Thu, Ngoc Anh|Ngọc Anh, "
               "Thu Trang, Thi Hoa|Thị Hoa, Phuong Linh|Phương Linh, Thanh Huyen|Thanh Huyền, Thi Ha|Thị Hà",
        family="Nguyen|Nguyễn, Tran|Trần, Le|Lê, Pham|Phạm, Hoang|Hoàng|Huynh, Phan, Vu|Vũ|Vo, "
               "Dang|Đặng, Bui|Bùi, Do|Đỗ, Ho|Hồ, Ngo|Ngô, Duong|Dương, Ly|Lý"),
    "spanish": dict(
        share=0.08, nats="ES:.4 MX:.3 AR:.1 CO:.1 CL:.1",
        male="Jose|José, Juan, Carlos, Luis, Javier|Xavier, Miguel, Alejandro, Francisco, Diego, Pablo, "
             "Antonio, Manuel, Juan Carlos|Juancarlos, Jorge, Andres|Andrés",
        female="Maria|María, Ana, Carmen, Laura, Lucia|Lucía, Sofia|Sofía, Elena, Isabel, "
               "Maria Jose|María José|Mariajose, Paula, Marta, Andrea, Valentina, Gabriela, Daniela",
        family="Garcia|García, Rodriguez|Rodríguez, Martinez|Martínez, Lopez|López, Gonzalez|González, "
               "Hernandez|Hernández, Perez|Pérez, Sanchez|Sánchez, Ramirez|Ramírez, Torres, Flores, "
               "Gomez|Gómez, Diaz|Díaz, Moreno, Alvarez|Álvarez, Romero, Ruiz, Jimenez|Jiménez, "
               "Fernandez|Fernández, Vargas"),
    "indian": dict(
        share=0.08, nats="IN:1",
        male="Amit, Rahul, Raj, Rajesh, Suresh, Deepak, Vijay, Sanjay, Arjun, Ravi, Anil, Sunil, Manoj, "
             "Vikram, Mohit",
        female="Priya, Anjali, Sunita, Pooja|Puja, Neha, Kavita|Kavitha, Lakshmi|Laxmi, Divya, Anita, "
               "Meena|Mina, Deepika, Shreya|Shriya",
        family="Kumar, Sharma, Singh, Patel, Gupta, Reddy|Reddi, Rao, Iyer|Iyar, Nair, Shah, Mehta, Das, "
               "Joshi, Verma, Agarwal|Aggarwal|Agrawal, Chaudhary|Choudhary|Chaudhry, Mukherjee|Mukherji, "
               "Banerjee|Banerji, Pillai, Menon"),
}
_LANGS = tuple(_POOLS)

# hanzi surname: pinyin, Wade-Giles (Taiwan), Cantonese (Hong Kong / Macao); most common first
_SURNAMES = """王 wang wang wong;李 li li lee;张 zhang chang cheung;刘 liu liu lau;陈 chen chen chan;
杨 yang yang yeung;赵 zhao chao chiu;黄 huang huang wong;周 zhou chou chow;吴 wu wu ng;徐 xu hsu tsui;
孙 sun sun suen;胡 hu hu wu;朱 zhu chu chu;高 gao kao ko;林 lin lin lam;何 he ho ho;郭 guo kuo kwok;
马 ma ma ma;罗 luo lo law;梁 liang liang leung;宋 song sung sung;郑 zheng cheng cheng;谢 xie hsieh tse;
韩 han han hon;唐 tang tang tong;冯 feng feng fung;于 yu yu yu;董 dong tung tung;萧 xiao hsiao siu;
程 cheng cheng ching;曹 cao tsao tso;袁 yuan yuan yuen;邓 deng teng tang;许 xu hsu hui;傅 fu fu fu;
沈 shen shen shum;曾 zeng tseng tsang;彭 peng peng pang;吕 lv lu lui;苏 su su so;卢 lu lu lo;
蒋 jiang chiang cheung;蔡 cai tsai choi;贾 jia chia ka;丁 ding ting ting;魏 wei wei ngai;薛 xue hsueh sit;
叶 ye yeh yip;阎 yan yen yim;余 yu yu yue;潘 pan pan poon;杜 du tu to;戴 dai tai tai;夏 xia hsia ha;
钟 zhong chung chung;汪 wang wang wong;田 tian tien tin;任 ren jen yam;姜 jiang chiang keung;
范 fan fan fan;方 fang fang fong;石 shi shih shek;姚 yao yao yiu;谭 tan tan tam;廖 liao liao liu;
邹 zou tsou chau;熊 xiong hsiung hung;金 jin chin kam;陆 lu lu luk;郝 hao hao kok;孔 kong kung hung;
白 bai pai pak;崔 cui tsui tsui;康 kang kang hong;毛 mao mao mo;邱 qiu chiu yau;秦 qin chin chun;
江 jiang chiang kong;史 shi shih sze;顾 gu ku ku;侯 hou hou hau;邵 shao shao shiu;孟 meng meng mang;
龙 long lung lung;万 wan wan man;段 duan tuan tuen;雷 lei lei lui;钱 qian chien chin;汤 tang tang tong;
尹 yin yin wan;黎 li li lai;易 yi yi yik;常 chang chang sheung;武 wu wu mo;乔 qiao chiao kiu;
贺 he ho ho;赖 lai lai lai;龚 gong kung kung;文 wen wen man;欧阳 ouyang ouyang auyeung;
司马 sima ssuma szema;上官 shangguan shangkuan sheungkoon"""

# given-name characters: pinyin, Wade-Giles, Cantonese, pool (m / f)
_GIVEN_CHARS = """伟 wei wei wai m;强 qiang chiang keung m;磊 lei lei lui m;军 jun chun kwan m;
勇 yong yung yung m;杰 jie chieh kit m;涛 tao tao to m;明 ming ming ming m;超 chao chao chiu m;
刚 gang kang kong m;平 ping ping ping m;辉 hui hui fai m;鹏 peng peng pang m;华 hua hua wah m;
飞 fei fei fei m;鑫 xin hsin yam m;波 bo po po m;斌 bin pin ban m;宇 yu yu yu m;浩 hao hao ho m;
凯 kai kai hoi m;健 jian chien kin m;俊 jun chun chun m;帆 fan fan fan m;旭 xu hsu yuk m;
龙 long lung lung m;阳 yang yang yeung m;建 jian chien kin m;国 guo kuo kwok m;志 zhi chih chi m;
文 wen wen man m;天 tian tien tin m;子 zi tzu tsz m;嘉 jia chia ka m;洋 yang yang yeung m;
博 bo po pok m;晨 chen chen san m;东 dong tung tung m;峰 feng feng fung m;成 cheng cheng shing m;
大 da ta tai m;芳 fang fang fong f;娜 na na na f;敏 min min man f;静 jing ching ching f;丽 li li lai f;
艳 yan yen yim f;娟 juan chuan kuen f;霞 xia hsia ha f;秀 xiu hsiu sau f;英 ying ying ying f;
玲 ling ling ling f;婷 ting ting ting f;雪 xue hsueh suet f;慧 hui hui wai f;燕 yan yen yin f;
红 hong hung hung f;琳 lin lin lam f;颖 ying ying wing f;佳 jia chia kai f;欣 xin hsin yan f;
怡 yi yi yee f;梅 mei mei mui f;莉 li li lei f;萍 ping ping ping f;雅 ya ya nga f;倩 qian chien sin f;
晶 jing ching ching f;淑 shu shu suk f;月 yue yueh yuet f;琪 qi chi kei f;思 si ssu sze f;
雨 yu yu yu f;梦 meng meng mung f;诗 shi shih sze f;涵 han han ham f;晓 xiao hsiao hiu f"""

# a homophone a clerk might type instead (hanzi "typos")
_HOMOPHONES = ("伟玮 磊垒 勇永 杰洁 涛滔 明铭 超潮 刚钢 华骅 飞菲 鑫新 波博 浩昊 凯恺 帆凡 旭煦 龙隆 "
               "志智 文雯 子梓 嘉佳 晨辰 东冬 峰锋 成诚 大达 芳方 娟鹃 霞侠 玲灵 婷亭 红虹 欣馨 怡仪 "
               "梅玫 雅亚 倩茜 淑舒 月悦 琪琦 思斯 涵晗 晓小 强蔷 军君 健剑 阳扬 静婧 丽俐 艳燕 宇雨 "
               "平萍 辉晖 英瑛 敏珉 娜纳 秀琇 雪薛 天添 国帼 诗师 梦萌 斌彬 鹏朋 俊骏 建健 洋阳 博波 "
               "慧惠 燕艳 琳霖 颖莹 佳嘉 莉丽 萍平 晶静 雨宇")

# very common full names (many distinct people each): hanzi and sex
_COMMON_ZH = ("王伟m 张伟m 李伟m 刘伟m 王磊m 李强m 刘洋m 李军m 王勇m 张杰m "
              "李娜f 王芳f 李静f 王静f 张敏f 张丽f 王秀英f 李秀英f 张秀英f 刘芳f")

_HOTEL_BRANDS = ("国门", "京瑞", "华滨", "金都", "燕翔", "首航", "临空", "新港", "中苑", "望湖", "天悦",
                 "兴华", "丽景", "和园", "云海", "鸿运", "泰和", "瑞祥", "凯旋", "御园", "海悦", "翠园",
                 "龙腾", "嘉禾", "金桥", "康源", "德顺", "福临")
_HOTEL_SUFFIX = ("大酒店", "商务酒店", "宾馆", "假日酒店", "国际酒店", "酒店")
_HOTEL_DISTRICTS = (9, 11, 2, 10, 8, 4, 3, 7, 9, 11, 2, 5, 10, 8, 4, 1, 0, 3, 9, 11, 2, 13, 12, 14,
                    15, 6, 9, 11)
_STATION_WORDS = ("和平里", "安定门", "交道口", "东四", "新街口", "月坛", "展览路", "金融街", "三里屯",
                  "望京", "建外", "团结湖", "中关村", "学院路", "海淀", "清河", "卢沟桥", "方庄",
                  "丰台", "新村", "八角", "古城", "鲁谷", "苹果园", "大峪", "永定", "龙泉", "城子",
                  "良乡", "长阳", "城关", "拱辰", "新华", "永顺", "梨园", "宋庄", "胜利", "石园",
                  "空港", "后沙峪", "城北", "回龙观", "天通苑", "沙河", "兴丰", "黄村", "亦庄", "旧宫",
                  "泉河", "龙山", "雁栖", "北房", "兴谷", "滨河", "渔阳", "林荫", "鼓楼", "果园", "檀营", "溪翁庄",
                  "儒林", "香水园", "百泉", "八达岭")
_STREETS = ("建国", "和平", "新华", "朝阳", "光明", "胜利", "解放", "人民", "文化", "团结", "长安", "复兴",
            "友谊", "幸福", "安定", "永定", "金台", "望京", "学院", "花园", "双井", "劲松", "方庄", "马甸",
            "紫竹", "万寿", "翠微", "东风", "南苑", "回龙", "天通", "北苑", "梨园", "玉泉", "八里", "十里",
            "青年", "育新", "清河", "西苑")
_COMPOUND_A = ("阳光", "金色", "碧水", "绿洲", "翠湖", "锦绣", "书香", "康乐", "怡景", "世纪", "东方",
               "明珠", "和谐", "丽都", "枫林", "华清", "美林", "芳草", "星河", "融泽")
_COMPOUND_B = ("小区", "家园", "花园", "嘉园", "苑", "公寓", "新村", "里")
_EMPLOYER_BRANDS = ("德瑞 derui", "欧华 ouhua", "泰和 taihe", "博远 boyuan", "嘉美 jiamei", "莱茵 laiyin",
                    "凯捷 kaijie", "瑞达 ruida", "汉斯 hansi", "美辰 meichen", "朗德 langde",
                    "森源 senyuan", "宏泰 hongtai", "立信 lixin", "恒通 hengtong", "安捷 anjie",
                    "诺德 nuode", "英华 yinghua", "星辰 xingchen", "卓越 zhuoyue", "维森 weisen",
                    "贝尔 beier", "金桥 jinqiao", "天合 tianhe", "和信 hexin", "远东 yuandong",
                    "新亚 xinya", "大和 dahe", "韩亚 hanya", "友联 youlian", "北欧 beiou", "法兰 falan",
                    "汉诺 hannuo", "樱田 yingtian", "越华 yuehua", "印华 yinhua", "西雅 xiya",
                    "阿尔 aer", "澳亚 aoya", "加华 jiahua")
_INDUSTRIES = ("科技 tech", "贸易 trade", "咨询 consult", "汽车零部件 auto", "医疗器械 med",
               "化工 chem", "机械 mach", "软件 soft", "食品 food", "物流 logi", "教育咨询 edu",
               "餐饮管理 dine")
_WORK_DISTRICT_W = (8, 8, 35, 20, 3, 1, 0, 1, 5, 10, 4, 10, 0, 0, 0, 0)
_PHONE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                   "155", "156", "157", "158", "159", "166", "170", "176", "177", "180", "181", "182",
                   "183", "185", "186", "187", "188", "189", "191", "198", "199")
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"      # no I / O in document numbers
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = "10X98765432"

_DOC_TYPE_ZH = ("居民身份证", "护照", "港澳居民来往内地通行证", "台湾居民来往大陆通行证")
# indexed by _doc_kind(); immigration never shows the ID card
_DOC_TYPE_EN = ("ID CARD", "PASSPORT", "HOME RETURN PERMIT", "TW PERMIT")
_POLICE_OTHER_TYPES = ("临时住宿登记", "境外人员住宿登记", "流动人口居住登记")


# --------------------------------------------------------------------------- small helpers

def _rng(seed: int, label: str) -> np.random.Generator:
    """An independent random stream per concern, so adding a step never shifts the others."""
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def _series(values) -> pl.Series:
    return pl.Series(values=list(values), dtype=pl.String)


def _take(vocab: pl.Series, idx: np.ndarray) -> pl.Series:
    """vocab[idx] with -1 -> "" (vocab must not contain nulls)."""
    ext = pl.concat([vocab, _series([""])])
    return ext.gather(np.where(idx < 0, len(vocab), idx))


def _cat(*parts) -> pl.Series:
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in parts]
    return pl.select(pl.concat_str(exprs)).to_series()


def _where(mask: np.ndarray, a, b) -> pl.Series:
    a = pl.lit(a) if isinstance(a, str) else a
    b = pl.lit(b) if isinstance(b, str) else b
    return pl.select(pl.when(pl.Series(mask)).then(a).otherwise(b)).to_series()


def _null_where(mask: np.ndarray, s: pl.Series) -> pl.Series:
    return pl.select(pl.when(pl.Series(~mask)).then(s)).to_series()


def _pick(r: np.random.Generator, n: int, p: float) -> np.ndarray:
    return r.random(n) < p


def _zipf_index(r: np.random.Generator, k: int, size: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** exponent
    return r.choice(k, size=size, p=w / w.sum())


def _weighted(r: np.random.Generator, weights, size: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return r.choice(len(w), size=size, p=w / w.sum())


def _unique_ints(r: np.random.Generator, k: int, high: int) -> np.ndarray:
    """k distinct integers in [0, high)."""
    if k > high // 4:
        raise ValueError(f"number space too small: {k} values in {high}")
    v = r.integers(0, high, k)
    while True:
        _, first = np.unique(v, return_index=True)
        dup = np.ones(k, dtype=bool)
        dup[first] = False
        if not dup.any():
            return v
        v[dup] = r.integers(0, high, int(dup.sum()))


def _with_duplicates(r: np.random.Generator, pid: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Append a duplicate row for a share p of the rows; returns (pid, is_duplicate)."""
    dup = pid[_pick(r, len(pid), p)]
    return (np.concatenate([pid, dup]),
            np.concatenate([np.zeros(len(pid), bool), np.ones(len(dup), bool)]))


def _days_to_ymd(days: np.ndarray):
    d64 = days.astype("datetime64[D]")
    y64 = d64.astype("datetime64[Y]")
    m64 = d64.astype("datetime64[M]")
    y = y64.astype(np.int64) + 1970
    m = (m64 - y64.astype("datetime64[M]")).astype(np.int64) + 1
    d = (d64 - m64.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, d


def _ymd_to_days(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    months = (y - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (m - 1)
    return months.astype("datetime64[D]").astype(np.int64) + (d - 1)


def _fmt_dates(days: np.ndarray, missing: np.ndarray, fmt: str) -> pl.Series:
    s = pl.Series(days.astype(np.int32)).cast(pl.Date).dt.strftime(fmt)
    return _null_where(missing, s)


def _fmt_times(secs: np.ndarray, present: np.ndarray, fmt: str) -> pl.Series:
    s = pl.from_epoch(pl.Series(np.where(present, secs, 0).astype(np.int64)), time_unit="s")
    return _null_where(~present, s.dt.strftime(fmt))


def _digits(values: np.ndarray, width: int) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.String).str.zfill(width)


def _pattern_strings(pattern: str, values: np.ndarray) -> pl.Series:
    """Decode distinct integers into strings of a pattern (@ letter, # digit, else literal)."""
    letters, digits = _series(_LETTERS), _series("0123456789")
    parts: list = []
    v = values.astype(np.int64).copy()
    for ch in reversed(pattern):
        if ch == "@":
            parts.append(letters.gather(v % 24))
            v //= 24
        elif ch == "#":
            parts.append(digits.gather(v % 10))
            v //= 10
        else:
            parts.append(ch)
    return _cat(*reversed(parts))


def _pattern_space(pattern: str) -> int:
    return int(np.prod([24 if c == "@" else 10 if c == "#" else 1 for c in pattern], dtype=object))


def _typo(s: pl.Series, mask: np.ndarray, r: np.random.Generator, alphabet: str = "") -> pl.Series:
    """One-character insert / delete / substitute / transpose on the masked rows.

    alphabet: characters to insert or substitute; default letters in the case of the neighbour.
    With an alphabet given only substitution is used (document numbers)."""
    idx = np.flatnonzero(mask & s.is_not_null().to_numpy())
    if len(idx) == 0:
        return s
    sub = s.gather(idx)
    k = len(idx)
    op = np.zeros(k, np.int64) if alphabet else r.integers(0, 4, k)
    pool = alphabet or "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    upper = _series(pool).gather(r.integers(0, len(pool), k))
    df = pl.DataFrame({"s": sub, "op": op, "u": r.random(k), "c": upper})
    n = pl.col("s").str.len_chars()
    pos = (pl.col("u") * n).floor().cast(pl.Int64).clip(0, pl.max_horizontal(n - 2, 0))
    char = pl.col("s").str.slice(pos, 1)
    c = pl.col("c") if alphabet else (
        pl.when(char.str.contains("[a-z]")).then(pl.col("c").str.to_lowercase()).otherwise(pl.col("c")))
    head, tail1 = pl.col("s").str.slice(0, pos), pl.col("s").str.slice(pos + 1)
    out = df.select(
        pl.when(n < 3).then(pl.col("s"))
        .when(pl.col("op") == 0).then(pl.concat_str([head, c, tail1]))
        .when(pl.col("op") == 1).then(pl.concat_str([head, tail1]))
        .when(pl.col("op") == 2).then(pl.concat_str([head, c, pl.col("s").str.slice(pos)]))
        .otherwise(pl.concat_str([head, pl.col("s").str.slice(pos + 1, 1), char,
                                  pl.col("s").str.slice(pos + 2)]))
    ).to_series()
    return s.scatter(idx, out)


def resident_id_check_chars(first17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters for 17-digit resident ID bodies given as int64."""
    digits = (first17[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
    return np.array(list(_ID_CHECK))[(digits @ _ID_WEIGHTS) % 11]


# --------------------------------------------------------------------------- vocabulary tables

@dataclass(frozen=True)
class _NameTable:
    """Spellings of a list of names, flattened: entry i has spellings flat[off[i]:off[i]+nvar[i]]."""
    flat: pl.Series
    off: np.ndarray
    nvar: np.ndarray

    @staticmethod
    def build(entries: list[str]) -> "_NameTable":
        spellings = [e.split("|") for e in entries]
        nvar = np.array([len(s) for s in spellings])
        off = np.concatenate([[0], np.cumsum(nvar)[:-1]])
        return _NameTable(_series([x for s in spellings for x in s]), off, nvar)

    def spell(self, idx: np.ndarray, variant: np.ndarray, r: np.random.Generator) -> pl.Series:
        """Canonical spelling, or a random spelling where `variant` is set; idx -1 -> ""."""
        safe = np.maximum(idx, 0)
        v = np.where(variant, (r.random(len(idx)) * self.nvar[safe]).astype(np.int64), 0)
        return _null_where(idx < 0, self.flat.gather(self.off[safe] + v)).fill_null("")


def _split_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _pairs(text: str) -> tuple[list[str], np.ndarray]:
    keys, weights = zip(*(item.split(":") for item in text.split()))
    return list(keys), np.array([float(w) for w in weights])


@dataclass(frozen=True)
class _Vocab:
    sur_hz: pl.Series
    sur_rom: pl.Series            # 3 * n_surnames: pinyin, Wade-Giles, Cantonese blocks
    chr_hz: pl.Series
    chr_alt: pl.Series            # homophone per given char
    chr_rom: pl.Series            # 3 * n_chars
    male_chars: np.ndarray
    female_chars: np.ndarray
    common_zh: list[tuple[int, int, int, int]]   # surname, g1, g2, sex
    family: _NameTable            # all foreign pools concatenated
    given: _NameTable
    lang_family: list[np.ndarray]            # global family indices per language
    lang_given: list[tuple[np.ndarray, np.ndarray]]   # (male, female) per language


def _build_vocab() -> _Vocab:
    sur = [line.split() for line in _SURNAMES.replace("\n", "").split(";")]
    chars = [line.split() for line in _GIVEN_CHARS.replace("\n", "").split(";")]
    chr_index = {c[0]: i for i, c in enumerate(chars)}
    sur_index = {s[0]: i for i, s in enumerate(sur)}
    alt = {pair[0]: pair[1] for pair in _HOMOPHONES.split()}
    common = []
    for item in _COMMON_ZH.split():
        name, sex = item[:-1], int(item[-1] == "f")
        g = [chr_index[c] for c in name[1:]] + [-1]
        common.append((sur_index[name[0]], g[0], g[1], sex))
    fam_entries, giv_entries, lang_family, lang_given = [], [], [], []
    for pool in _POOLS.values():
        fams, males, females = (_split_list(pool[k]) for k in ("family", "male", "female"))
        lang_family.append(np.arange(len(fam_entries), len(fam_entries) + len(fams)))
        fam_entries += fams
        m0 = len(giv_entries)
        lang_given.append((np.arange(m0, m0 + len(males)),
                           np.arange(m0 + len(males), m0 + len(males) + len(females))))
        giv_entries += males + females
    return _Vocab(
        sur_hz=_series(s[0] for s in sur),
        sur_rom=_series([s[k] for k in (1, 2, 3) for s in sur]),
        chr_hz=_series(c[0] for c in chars),
        chr_alt=_series(alt.get(c[0], c[0]) for c in chars),
        chr_rom=_series([c[k] for k in (1, 2, 3) for c in chars]),
        male_chars=np.array([i for i, c in enumerate(chars) if c[4] == "m"]),
        female_chars=np.array([i for i, c in enumerate(chars) if c[4] == "f"]),
        common_zh=common,
        family=_NameTable.build(fam_entries), given=_NameTable.build(giv_entries),
        lang_family=lang_family, lang_given=lang_given)


def _country_table(column: int) -> _NameTable:
    return _NameTable.build([c[column] for c in _COUNTRIES])


def _hotels() -> tuple[pl.Series, np.ndarray]:
    names = [f"{b}{_HOTEL_SUFFIX[i % len(_HOTEL_SUFFIX)]}" for i, b in enumerate(_HOTEL_BRANDS)]
    return _series(names), np.array(_HOTEL_DISTRICTS)


def _stations() -> pl.Series:
    """Four police stations per district; station index = district * 4 + k."""
    short = [d[:-1] for d in _DISTRICTS]
    return _series(f"{short[i // 4]}分局{w}派出所" for i, w in enumerate(_STATION_WORDS))


def _employers() -> tuple[pl.Series, pl.Series, np.ndarray]:
    """Synthetic foreign-invested companies: (name, e-mail domain, work district)."""
    r = np.random.default_rng(20260301)        # fixed: a vocabulary, not part of the sample seed
    combos = [(b, i) for b in _EMPLOYER_BRANDS for i in _INDUSTRIES]
    chosen = r.choice(len(combos), size=240, replace=False)
    names, domains = [], []
    for c in chosen:
        (b_hz, b_lat), (i_hz, i_lat) = combos[c][0].split(), combos[c][1].split()
        names.append(f"北京{b_hz}{i_hz}有限公司")
        domains.append(f"{b_lat}-{i_lat}.example.com")
    return _series(names), _series(domains), _weighted(r, _WORK_DISTRICT_W, 240)


def _flights() -> tuple[pl.Series, np.ndarray, list[np.ndarray]]:
    """Flight / train numbers, their port and, per origin group, the flights it takes."""
    r = np.random.default_rng(20260302)        # fixed vocabulary
    codes, ports, groups = [], [], []
    for airline, port, serves, count in _AIRLINES:
        numbers = r.choice(np.arange(101, 999), size=count, replace=False)
        for num in sorted(numbers):
            codes.append(f"{airline}{num}")
            ports.append(port)
            groups.append(set(range(3 + len(_LANGS))) if serves == "all" else {int(g) for g in serves.split()})
    for train in _TRAINS:
        codes.append(train)
        ports.append(3)
        groups.append({1})
    per_group = [np.array([i for i, g in enumerate(groups) if k in g]) for k in range(3 + len(_LANGS))]
    return _series(codes), np.array(ports), per_group


# --------------------------------------------------------------------------- population

@dataclass
class _People:
    n: int
    cat: np.ndarray            # 0 citizen, 1 foreigner, 2 HK/Macao/Taiwan
    nat: np.ndarray            # index into _COUNTRIES
    lang: np.ndarray           # index into _LANGS, -1 for Chinese names
    sex: np.ndarray            # 0 male, 1 female
    dob: np.ndarray            # days since 1970-01-01
    zfam: np.ndarray
    zg1: np.ndarray
    zg2: np.ndarray
    ffam: np.ndarray
    ffam2: np.ndarray          # Spanish second surname
    fgiv: np.ndarray
    rid: pl.Series             # resident ID (citizens), "" otherwise
    rid_alt: pl.Series         # another valid resident ID for identity conflicts
    passport: pl.Series        # current passport, "" for HK/Macao/Taiwan
    old_passport: pl.Series    # before re-issue, "" when never re-issued
    reissued: np.ndarray
    permit: pl.Series
    phone: pl.Series
    home: np.ndarray           # destination district index
    address: pl.Series
    employer: np.ndarray       # -1 when not in the commerce register
    twin_pairs: tuple[np.ndarray, np.ndarray]


def _pairs_of(r: np.random.Generator, n: int, twin_share: float, namesake_share: float):
    """Disjoint index pairs (a -> b): twins and namesakes; b copies from a."""
    n_tw = max(1, round(n * twin_share / 2)) if n >= 8 else 0
    n_ns = max(1, round(n * namesake_share / 2)) if n >= 8 else 0
    chosen = r.choice(n, size=2 * (n_tw + n_ns), replace=False)
    a, b = chosen[: n_tw + n_ns], chosen[n_tw + n_ns:]
    return (a[:n_tw], b[:n_tw]), (a[n_tw:], b[n_tw:])


def _draw_categories(r, n):
    cat = r.choice(3, size=n, p=[0.62, 0.30, 0.08]).astype(np.int8)
    lang = np.full(n, -1, np.int8)
    foreign = cat == 1
    shares = np.array([p["share"] for p in _POOLS.values()])
    lang[foreign] = r.choice(len(_LANGS), size=int(foreign.sum()), p=shares / shares.sum())
    nat = np.full(n, _ISO["CN"], np.int16)
    hmt = cat == 2
    nat[hmt] = np.array([_ISO["HK"], _ISO["MO"], _ISO["TW"]])[
        r.choice(3, size=int(hmt.sum()), p=[0.55, 0.15, 0.30])]
    for li, pool in enumerate(_POOLS.values()):
        m = lang == li
        keys, w = _pairs(pool["nats"])
        nat[m] = np.array([_ISO[k] for k in keys])[r.choice(len(keys), size=int(m.sum()), p=w / w.sum())]
    return cat, lang, nat


def _draw_dob(r, n, as_of_days):
    kind = r.choice(3, size=n, p=[0.08, 0.90, 0.02])
    age_years = np.select([kind == 0, kind == 1], [r.uniform(0.5, 17.9, n), r.triangular(18, 30, 72, n)],
                          r.uniform(72, 88, n))
    return (as_of_days - age_years * 365.25).astype(np.int64)


def _draw_zh_given(r, V: _Vocab, sex: np.ndarray):
    k = len(sex)
    pool_m, pool_f = V.male_chars, V.female_chars
    g1m, g2m = pool_m[_zipf_index(r, len(pool_m), k, 0.5)], pool_m[_zipf_index(r, len(pool_m), k, 0.5)]
    g1f, g2f = pool_f[_zipf_index(r, len(pool_f), k, 0.5)], pool_f[_zipf_index(r, len(pool_f), k, 0.5)]
    g1, g2 = np.where(sex == 1, g1f, g1m), np.where(sex == 1, g2f, g2m)
    g2 = np.where(_pick(r, k, 0.25) | (g2 == g1), -1, g2)
    return g1, g2


def _draw_foreign_given(r, V: _Vocab, lang: np.ndarray, sex: np.ndarray):
    giv = np.full(len(lang), -1, np.int64)
    for li in range(len(_LANGS)):
        for s in (0, 1):
            m = (lang == li) & (sex == s)
            pool = V.lang_given[li][s]
            giv[m] = pool[_zipf_index(r, len(pool), int(m.sum()), 0.6)]
    return giv


def _draw_names(r, V: _Vocab, cat, lang, sex):
    n = len(cat)
    zh = cat != 1
    zfam = np.where(zh, _zipf_index(r, len(V.sur_hz), n, 0.7), -1)
    zg1, zg2 = _draw_zh_given(r, V, sex)
    zg1, zg2 = np.where(zh, zg1, -1), np.where(zh, zg2, -1)
    common = zh & _pick(r, n, 0.03)
    for s in (0, 1):
        options = np.array([c for c in V.common_zh if c[3] == s])
        m = np.flatnonzero(common & (sex == s))
        pick = options[r.integers(0, len(options), len(m))]
        zfam[m], zg1[m], zg2[m] = pick[:, 0], pick[:, 1], pick[:, 2]
    ffam = np.full(n, -1, np.int64)
    ffam2 = np.full(n, -1, np.int64)
    for li, name in enumerate(_LANGS):
        m = lang == li
        fams = V.lang_family[li]
        ffam[m] = fams[_zipf_index(r, len(fams), int(m.sum()), 0.8)]
        if name == "spanish":
            second = fams[_zipf_index(r, len(fams), int(m.sum()), 0.8)]
            ffam2[m] = np.where(_pick(r, int(m.sum()), 0.7), second, -1)
    fgiv = _draw_foreign_given(r, V, lang, sex)
    common_f = (cat == 1) & _pick(r, n, 0.03)        # JOHN SMITH, MUHAMMAD ALI, ...
    for li in range(len(_LANGS)):
        m = common_f & (lang == li)
        ffam[m] = V.lang_family[li][0]
        ffam2[m] = -1
        fgiv[m] = np.where(sex[m] == 1, V.lang_given[li][1][0], V.lang_given[li][0][0])
    return zfam, zg1, zg2, ffam, ffam2, fgiv


def _make_twins_differ(r, V: _Vocab, P_names, a, b, lang, sex):
    """Twins keep the family name but must have different given names."""
    zfam, zg1, zg2, ffam, ffam2, fgiv = P_names
    zfam[b], ffam[b], ffam2[b] = zfam[a], ffam[a], ffam2[a]
    for _ in range(20):
        same = (zg1[b] == zg1[a]) & (zg2[b] == zg2[a]) & (fgiv[b] == fgiv[a])
        if not same.any():
            break
        idx = b[same]
        g1, g2 = _draw_zh_given(r, V, sex[idx])
        zh = zg1[idx] >= 0
        zg1[idx], zg2[idx] = np.where(zh, g1, -1), np.where(zh, g2, -1)
        fg = _draw_foreign_given(r, V, lang[idx], sex[idx])
        fgiv[idx] = np.where(fgiv[idx] >= 0, fg, -1)


def _resident_ids(r, cat, sex, dob, home, twins) -> tuple[pl.Series, np.ndarray]:
    """Valid, distinct resident IDs for citizens (twins get consecutive ones); (ids, 17-digit bodies)."""
    n = len(cat)
    beijing = np.array([int(a) for a in _DISTRICT_AREA])
    other = np.array([int(a) for a in _OTHER_AREAS])
    area = np.where(_pick(r, n, 0.6), beijing[home], other[r.integers(0, len(other), n)])
    a, b = twins
    area[b] = area[a]
    k = r.integers(1, 498, n)
    k[b] = k[a] + 1
    y, m, d = _days_to_ymd(dob)
    ymd = y * 10000 + m * 100 + d

    def body(k):
        return (area * 10**8 + ymd) * 1000 + 2 * k + (sex == 0)

    citizens = np.flatnonzero(cat == 0)
    for _ in range(50):
        values = body(k)[citizens]
        _, first = np.unique(values, return_index=True)
        dup = np.ones(len(citizens), bool)
        dup[first] = False
        if not dup.any():
            break
        k[citizens[dup]] = r.integers(1, 498, int(dup.sum()))
    b17 = body(k)
    ids = _cat(_digits(b17, 17), _series(resident_id_check_chars(b17)))
    return _null_where(cat != 0, ids).fill_null(""), b17


def _alternate_ids(r, cat, sex, dob, taken: np.ndarray) -> pl.Series:
    """Another person's plausible valid ID: same birth date and sex, different area and sequence."""
    n = len(cat)
    areas = np.array([int(a) for a in _DISTRICT_AREA + _OTHER_AREAS])
    y, m, d = _days_to_ymd(dob)
    ymd = y * 10000 + m * 100 + d

    area = areas[r.integers(0, len(areas), n)]
    seq = 2 * r.integers(1, 498, n) + (sex == 0)
    citizen_taken = taken[cat == 0]
    for _ in range(50):
        b17 = (area * 10**8 + ymd) * 1000 + seq
        clash = np.isin(b17, citizen_taken)
        if not clash.any():
            break
        seq[clash] = 2 * r.integers(1, 498, int(clash.sum())) + (sex[clash] == 0)
    ids = _cat(_digits(b17, 17), _series(resident_id_check_chars(b17)))
    return _null_where(cat != 0, ids).fill_null("")


def _documents(r, cat, nat, reissued):
    """Distinct passports (current and pre-re-issue) and HK/Macao/Taiwan permits."""
    n = len(cat)
    holder = cat != 2
    patterns = np.full(n, "", dtype=object)
    old_patterns = np.full(n, "", dtype=object)
    for ci, country in enumerate(_COUNTRIES):
        m = np.flatnonzero((nat == ci) & holder)
        if len(m) == 0 or not country[4]:
            continue
        keys, w = _pairs(country[4])
        patterns[m] = np.array(keys, dtype=object)[r.choice(len(keys), size=len(m), p=w / w.sum())]
        old_patterns[m] = "G########" if country[0] == "CN" else keys[0]
    for iso, pattern in _PERMIT_PATTERN.items():
        patterns[(nat == _ISO[iso]) & ~holder] = pattern
    old_patterns[~reissued] = ""
    slots = np.concatenate([patterns, old_patterns])
    parts, where = [], []
    for pattern in sorted(set(slots) - {""}):
        idx = np.flatnonzero(slots == pattern)
        values = _unique_ints(r, len(idx), _pattern_space(pattern))
        parts.append(_pattern_strings(pattern, values))
        where.append(idx)
    result = pl.Series(values=[""] * len(slots), dtype=pl.String)
    if parts:
        result = result.scatter(np.concatenate(where), pl.concat(parts))
    current, old = result[:n], result[n:]
    passport = _null_where(~holder, current).fill_null("")
    permit = _null_where(holder, current).fill_null("")
    return passport, old, permit


def _phones(r, n) -> pl.Series:
    prefix = np.array([int(p) for p in _PHONE_PREFIXES])[r.integers(0, len(_PHONE_PREFIXES), n)]
    return _digits(prefix * 10**8 + _unique_ints(r, n, 10**8), 11)


def _addresses(r, home) -> pl.Series:
    n = len(home)
    return _cat("北京市", _take(_series(_DISTRICTS), home),
                _take(_series(_STREETS), r.integers(0, len(_STREETS), n)), "街道",
                _take(_series(_COMPOUND_A), r.integers(0, len(_COMPOUND_A), n)),
                _take(_series(_COMPOUND_B), r.integers(0, len(_COMPOUND_B), n)),
                _digits(r.integers(1, 40, n), 1), "号楼", _digits(r.integers(1, 7, n), 1), "单元",
                _digits(r.integers(1, 28, n) * 100 + r.integers(1, 7, n), 3))


def _population(n: int, seed: int, as_of_s: int, V: _Vocab) -> _People:
    r = _rng(seed, "population")
    cat, lang, nat = _draw_categories(r, n)
    sex = _pick(r, n, 0.5).astype(np.int8)
    dob = _draw_dob(r, n, as_of_s // _D)
    twins, namesakes = _pairs_of(r, n, 0.006, 0.003)
    for a, b in (twins, namesakes):
        cat[b], lang[b], nat[b], dob[b] = cat[a], lang[a], nat[a], dob[a]
    sex[namesakes[1]] = sex[namesakes[0]]
    names = _draw_names(_rng(seed, "names"), V, cat, lang, sex)
    _make_twins_differ(_rng(seed, "twins"), V, names, *twins, lang, sex)
    a, b = namesakes
    for arr in names:
        arr[b] = arr[a]
    home = _weighted(r, _DISTRICT_W, n)
    home[twins[1]] = home[twins[0]]
    rid, b17 = _resident_ids(_rng(seed, "resident-ids"), cat, sex, dob, home, twins)
    rid_alt = _alternate_ids(_rng(seed, "alternate-ids"), cat, sex, dob, b17)
    reissued = np.where(cat == 0, _pick(r, n, 0.04), np.where(cat == 1, _pick(r, n, 0.08), False))
    passport, old_passport, permit = _documents(_rng(seed, "documents"), cat, nat, reissued)
    phone = _phones(_rng(seed, "phones"), n)
    address = _addresses(_rng(seed, "addresses"), home)
    ta, tb = twins
    phone = phone.scatter(tb, phone.gather(ta))
    address = address.scatter(tb, address.gather(ta))
    adult = dob <= as_of_s // _D - 20 * 365
    in_register = adult & np.where(cat == 1, _pick(r, n, 0.35), (cat == 2) & _pick(r, n, 0.20))
    employer = np.where(in_register, r.integers(0, 240, n), -1)
    return _People(n, cat, nat, lang, sex, dob, *names, rid, rid_alt, passport, old_passport,
                   reissued, permit, phone, home, address, employer, twins)


# --------------------------------------------------------------------------- chain timeline

# break type, probability among all travelers, eligibility (any / q14: arrived >= 15 days before
# as_of / done: arrived >= 20 days before as_of)
_BREAKS = (("miss_arrival", 0.004, "any"), ("miss_registration", 0.005, "any"),
           ("miss_health_check", 0.004, "any"), ("miss_transfer", 0.003, "any"),
           ("miss_quarantine_start", 0.003, "any"), ("miss_quarantine_end", 0.004, "done"),
           ("miss_handover", 0.010, "done"), ("ooo_health_check", 0.003, "any"),
           ("ooo_transfer", 0.003, "any"), ("ooo_handover", 0.004, "done"),
           ("gap_registration", 0.004, "any"), ("gap_health_check", 0.003, "any"),
           ("gap_transfer", 0.003, "any"), ("gap_quarantine_start", 0.003, "any"),
           ("gap_handover", 0.007, "done"), ("early_release", 0.010, "q14"),
           ("district", 0.015, "done"), ("identity", 0.010, "any"))
_BREAK_NAMES = tuple(b[0] for b in _BREAKS)


@dataclass
class _Timeline:
    T: np.ndarray              # [n, 7] true stage times (seconds since epoch)
    present: np.ndarray        # [n, 7] recorded and <= as_of
    brk: np.ndarray            # break type index, -1 none
    flight: np.ndarray
    port: np.ndarray
    hotel: np.ndarray
    plate: pl.Series
    handover_district: np.ndarray
    station: np.ndarray


def _draw_breaks(r, arrival, as_of_s) -> np.ndarray:
    n = len(arrival)
    elig = {"any": np.ones(n, bool), "q14": arrival <= as_of_s - 15 * _D,
            "done": arrival <= as_of_s - 20 * _D}
    share = {k: max(v.mean(), 1e-9) for k, v in elig.items()}
    u = r.random(n)
    brk = np.full(n, -1, np.int64)
    lo = np.zeros(n)
    for i, (_, p, need) in enumerate(_BREAKS):
        hi = lo + np.where(elig[need], p / share[need], 0.0)
        brk[(u >= lo) & (u < hi)] = i
        lo = hi
    return brk


def _uniform_min(r, n, lo, hi) -> np.ndarray:
    return r.integers(lo, hi + 1, n).astype(np.int64) * _MIN


def _stage_times(r, arrival, brk) -> np.ndarray:
    n = len(arrival)
    is_ = {name: brk == i for i, name in enumerate(_BREAK_NAMES)}
    reg = arrival + _uniform_min(r, n, 5, 100)
    hc = reg + _uniform_min(r, n, 10, 80)
    m = is_["gap_registration"]
    reg = np.where(m, arrival + _uniform_min(r, n, 130, 170), reg)
    hc = np.where(m, reg + _uniform_min(r, n, 10, 40), hc)
    m = is_["gap_health_check"]
    hc = np.where(m, arrival + _uniform_min(r, n, 250, 300), hc)
    m = is_["ooo_health_check"]
    reg = np.where(m, arrival + _uniform_min(r, n, 60, 100), reg)
    hc = np.where(m, arrival + _uniform_min(r, n, 20, 55), hc)
    tr = np.maximum(reg, hc) + _uniform_min(r, n, 15, 120)
    tr = np.where(is_["gap_health_check"], hc + _uniform_min(r, n, 10, 50), tr)
    tr = np.where(is_["gap_transfer"], arrival + _uniform_min(r, n, 380, 600), tr)
    qs = tr + _uniform_min(r, n, 20, 110)
    m = is_["ooo_transfer"]
    hc = np.where(m, arrival + _uniform_min(r, n, 150, 180), hc)
    tr = np.where(m, arrival + _uniform_min(r, n, 110, 140), tr)
    qs = np.where(m, hc + _uniform_min(r, n, 5, 20), qs)
    qs = np.where(is_["gap_quarantine_start"], tr + _uniform_min(r, n, 130, 400), qs)
    qe = qs + _MIN_RELEASE + _uniform_min(r, n, 60, 1800)
    qe = np.where(is_["early_release"], qs + _uniform_min(r, n, 9 * 1440, 13 * 1440 + 720), qe)
    ho = qe + _uniform_min(r, n, 30, 1200) + r.integers(0, 60, n)
    ho = np.where(is_["gap_handover"], qe + _uniform_min(r, n, 26 * 60, 96 * 60) + r.integers(0, 60, n), ho)
    ho = np.where(is_["ooo_handover"], qe - _uniform_min(r, n, 120, 48 * 60) + r.integers(0, 60, n), ho)
    return np.stack([arrival, reg, hc, tr, qs, qe, ho], axis=1)


def _timeline(P: _People, seed: int, as_of_s: int) -> _Timeline:
    r = _rng(seed, "timeline")
    n = P.n
    recent = _pick(r, n, 0.015)
    offset = np.where(recent, r.integers(20 * _MIN, 8 * _H, n), r.integers(0, 45 * _D, n))
    arrival = (as_of_s - offset) // _MIN * _MIN
    _, flight_port, per_group = _flights()
    group = np.where(P.cat == 0, 0, np.where(P.cat == 2, np.where(P.nat == _ISO["TW"], 2, 1), 3 + P.lang))
    flight = np.zeros(n, np.int64)
    for g, options in enumerate(per_group):
        m = group == g
        flight[m] = options[r.integers(0, len(options), int(m.sum()))]
    hotel = r.integers(0, len(_HOTEL_BRANDS), n)
    a, b = P.twin_pairs
    arrival[b], flight[b], hotel[b] = arrival[a], flight[a], hotel[a]
    brk = _draw_breaks(r, arrival, as_of_s)
    T = _stage_times(r, arrival, brk)
    present = T <= as_of_s
    for s, stage in enumerate(STAGES):
        name = f"miss_{stage}"
        present[:, s] &= brk != _BREAK_NAMES.index(name)
    ho_d = np.where(brk == _BREAK_NAMES.index("district"), (P.home + r.integers(1, 16, n)) % 16, P.home)
    plate = _cat("京", _series("ABCEFGHJKLMNPQ").gather(r.integers(0, 14, n)), _digits(r.integers(0, 10**5, n), 5))
    return _Timeline(T, present, brk, flight, flight_port[flight], hotel, plate, ho_d,
                     ho_d * 4 + r.integers(0, 4, n))


# --------------------------------------------------------------------------- rendering helpers

def _zh_romanized(P: _People, V: _Vocab, pid, system: np.ndarray, sep: pl.Series):
    """(given, family) romanized per system (0 pinyin, 1 Wade-Giles, 2 Cantonese), lower case;
    empty for persons without a Chinese name."""
    ns, nc = len(V.sur_hz), len(V.chr_hz)
    zf, z1, z2 = P.zfam[pid], P.zg1[pid], P.zg2[pid]
    fam = _take(V.sur_rom, np.where(zf >= 0, system * ns + zf, -1))
    g1 = _take(V.chr_rom, np.where(z1 >= 0, system * nc + z1, -1))
    g2 = _take(V.chr_rom, np.where(z2 >= 0, system * nc + z2, -1))
    return _cat(g1, _where(z2 >= 0, sep, ""), g2), fam


def _latin_names(P: _People, V: _Vocab, pid, r, *, p_variant=0.0, p_hmt_pinyin=0.0,
                 pinyin_sep=(1.0, 0.0, 0.0), p_drop_second=0.0):
    """(given, family) Latin names of the rows' persons, capitalized as on a document."""
    k = len(pid)
    zh = P.cat[pid] != 1
    tw = P.nat[pid] == _ISO["TW"]
    system = np.where(P.cat[pid] == 2, np.where(tw, 1, 2), 0)
    system = np.where((system > 0) & _pick(r, k, p_hmt_pinyin), 0, system)
    sep = _series(["", " ", "-"]).gather(_weighted(r, pinyin_sep, k))
    sep = _where(system == 1, "-", _where(system == 2, " ", sep))
    zg, zf = _zh_romanized(P, V, pid, system, sep)
    variant = _pick(r, k, p_variant)
    fg = V.given.spell(np.where(zh, -1, P.fgiv[pid]), variant, r)
    ff = V.family.spell(np.where(zh, -1, P.ffam[pid]), variant, r)
    russian_f = (P.lang[pid] == _LANGS.index("russian")) & (P.sex[pid] == 1)
    ff = _where(russian_f, _cat(ff, "a"), ff)
    second = V.family.spell(np.where(zh | _pick(r, k, p_drop_second), -1, P.ffam2[pid]), variant, r)
    ff = _where(second.str.len_chars().to_numpy() > 0, _cat(ff, " ", second), ff)
    given = _where(zh, zg.str.to_titlecase(), fg)
    family = _where(zh, zf.str.to_titlecase(), ff)
    return given, family


def _hanzi_names(P: _People, V: _Vocab, pid, r, p_homophone: float):
    """(family, given) in hanzi ("" for persons without one); a share gets one given character
    replaced by a homophone."""
    k = len(pid)
    typo = _pick(r, k, p_homophone)
    z1, z2 = P.zg1[pid], P.zg2[pid]
    second = (z2 >= 0) & _pick(r, k, 0.5)
    g1 = _where(typo & ~second, _take(V.chr_alt, z1), _take(V.chr_hz, z1))
    g2 = _where(typo & second, _take(V.chr_alt, z2), _take(V.chr_hz, z2))
    return _take(V.sur_hz, P.zfam[pid]), _cat(g1, g2)


def _dob_days(P: _People, pid, r, p_swap: float) -> np.ndarray:
    days = P.dob[pid].copy()
    y, m, d = _days_to_ymd(days)
    swap = _pick(r, len(pid), p_swap) & (d <= 12) & (d != m)
    return np.where(swap, _ymd_to_days(y, d, m), days)


def _nationality(P: _People, pid, r, column: int, p_variant: float, p_missing: float) -> pl.Series:
    table = _country_table(column)
    s = table.spell(P.nat[pid], _pick(r, len(pid), p_variant), r)
    return _null_where(_pick(r, len(pid), p_missing), s)


def _phone_formats(phone: pl.Series, r, weights) -> pl.Series:
    """0 13800138000, 1 138 0013 8000, 2 +86-138-0013-8000, 3 138-0013-8000, 4 +86 13800138000."""
    a, b, c = phone.str.slice(0, 3), phone.str.slice(3, 4), phone.str.slice(7, 4)
    styles = [phone, _cat(a, " ", b, " ", c), _cat("+86-", a, "-", b, "-", c), _cat(a, "-", b, "-", c),
              _cat("+86 ", phone)]
    choice = _weighted(r, weights, len(phone))
    out = styles[0]
    for i in range(1, len(styles)):
        out = _where(choice == i, styles[i], out)
    return out


def _doc_kind(P: _People, pid) -> np.ndarray:
    """0 resident ID, 1 passport, 2 HK/Macao permit, 3 Taiwan permit (the document a source holds)."""
    tw = P.nat[pid] == _ISO["TW"]
    return np.select([P.cat[pid] == 0, P.cat[pid] == 1, tw], [0, 1, 3], 2)


def _held_documents(P: _People, pid, kind: np.ndarray, use_old: np.ndarray,
                    other_id: np.ndarray | None = None) -> pl.Series:
    """The document number a source holds per row: resident ID (or, for an identity conflict,
    another valid one), current or pre-re-issue passport, or travel permit."""
    rid = P.rid.gather(pid) if other_id is None else _where(other_id, P.rid_alt.gather(pid), P.rid.gather(pid))
    passport = _where(use_old, P.old_passport.gather(pid), P.passport.gather(pid))
    return _where(kind == 0, rid, _where(kind == 1, passport, P.permit.gather(pid)))


def _sort_rows(keys: list[np.ndarray]) -> np.ndarray:
    return np.lexsort(tuple(reversed(keys)))


def _daily_ids(prefix: str, secs: np.ndarray, width: int) -> pl.Series:
    """PREFIX + YYYYMMDD + per-day sequence, for rows already sorted by time."""
    day = secs // _D
    start = np.searchsorted(day, day, side="left")
    seq = np.arange(len(day)) - start + 1
    width = max(width, len(str(int(seq.max()) if len(seq) else 1)))
    return _cat(prefix, _fmt_dates(day, np.zeros(len(day), bool), "%Y%m%d"), _digits(seq, width))


@dataclass
class _Export:
    """One source's rows: the export columns, and per row the true person and the events."""
    frame: pl.DataFrame
    record_id: pl.Series
    pid: np.ndarray
    events: list[tuple[int, np.ndarray, np.ndarray]]   # (stage, row index, time) of present events
    handover_district: np.ndarray | None = None


def _stage_events(stage: int, secs: np.ndarray, present: np.ndarray):
    rows = np.flatnonzero(present)
    return (stage, rows, secs[rows])


# --------------------------------------------------------------------------- the four exports

def _immigration_names(P: _People, V: _Vocab, pid, r) -> pl.Series:
    """One upper-case Latin name, given name first (3% family first), 0.5% with a typo."""
    k = len(pid)
    given, family = _latin_names(P, V, pid, r, pinyin_sep=(0.70, 0.25, 0.05))
    given, family = given.str.to_uppercase(), family.str.to_uppercase()
    full = _where(_pick(r, k, 0.03), _cat(family, " ", given), _cat(given, " ", family))
    return _typo(full, _pick(r, k, 0.005), r)


def _immigration(P: _People, TL: _Timeline, V: _Vocab, seed: int) -> _Export:
    r = _rng(seed, "immigration")
    pid, _ = _with_duplicates(r, np.flatnonzero(TL.present[:, 0]), 0.005)
    order = _sort_rows([TL.T[pid, 0], r.random(len(pid))])
    pid = pid[order]
    k = len(pid)
    full = _immigration_names(P, V, pid, r)
    kind = np.maximum(_doc_kind(P, pid), 1)          # citizens enter on their passport
    arrival = TL.T[pid, 0]
    record_id = _daily_ids("IMM", arrival, 5)
    frame = pl.DataFrame({
        "ENTRY_ID": record_id,
        "FULL_NAME": full,
        "SEX": _series("MF").gather(P.sex[pid]),
        "DATE_OF_BIRTH": _fmt_dates(P.dob[pid], _pick(r, k, 0.002), "%Y%m%d"),
        "NATIONALITY": _series([c[0] for c in _COUNTRIES]).gather(P.nat[pid]),
        "TRAVEL_DOC_TYPE": _series(_DOC_TYPE_EN).gather(kind),
        "TRAVEL_DOC_NO": _where(kind == 1, P.passport.gather(pid), P.permit.gather(pid)),
        "ENTRY_TIME": _fmt_times(arrival, np.ones(k, bool), "%Y-%m-%d %H:%M"),
        "PORT": _series([p[0] for p in _PORTS]).gather(TL.port[pid]),
        "FLIGHT_NO": _flights()[0].gather(TL.flight[pid]),
        "ARRIVAL_DISTRICT": _series(_DISTRICTS).gather(np.array([p[1] for p in _PORTS])[TL.port[pid]]),
    })
    return _Export(frame, record_id, pid, [_stage_events(0, arrival, np.ones(k, bool))])


def _identity_health_dob(P: _People, TL: _Timeline, pid, is_first_row: np.ndarray) -> np.ndarray:
    """Rows whose DOB is shifted by years for an injected identity conflict (non-police cases)."""
    police_case = (P.cat[pid] == 0) & TL.present[pid, 6]
    ident = TL.brk[pid] == _BREAK_NAMES.index("identity")
    return ident & ~police_case & is_first_row


def _health_rows(TL: _Timeline, r, as_of_s: int):
    """Registration rows and quarantine rows (with duplicates), sorted by their first event.

    Returns (pid, is_registration_row, times [k, 7], present [k, 7]) per row."""
    pr = TL.present
    reg_pid, reg_dup = _with_duplicates(r, np.flatnonzero(pr[:, 1] | pr[:, 2]), 0.02)
    q_pid, _ = _with_duplicates(r, np.flatnonzero(pr[:, 3] | pr[:, 4] | pr[:, 5]), 0.01)
    pid = np.concatenate([reg_pid, q_pid])
    is_reg = np.arange(len(pid)) < len(reg_pid)
    k = len(pid)
    T = TL.T[pid].copy()
    seen = pr[pid].copy()
    shift = np.concatenate([reg_dup & _pick(r, len(reg_pid), 0.5), np.zeros(len(q_pid), bool)])
    later = T[:, 1] + _uniform_min(r, k, 1, 20)
    T[:, 1] = np.where(shift & (later <= as_of_s), later, T[:, 1])
    seen[:, 1:3] &= is_reg[:, None]
    seen[:, 3:6] &= ~is_reg[:, None]
    seen[:, [0, 6]] = False
    first_time = np.where(seen, T, _NEVER).min(axis=1)
    order = _sort_rows([first_time, r.random(k)])
    return pid[order], is_reg[order], T[order], seen[order]


def _health_names(P: _People, V: _Vocab, pid, r) -> pl.Series:
    """Hanzi for Chinese names; Latin for foreigners as "John Smith", "SMITH John" or "Smith John"."""
    k = len(pid)
    foreign = P.cat[pid] == 1
    given, family = _latin_names(P, V, pid, r, p_variant=0.35, p_drop_second=0.4)
    order_style = _weighted(r, (0.55, 0.43, 0.02), k)
    latin = _where(order_style == 0, _cat(given, " ", family),
                   _where(order_style == 1, _cat(family.str.to_uppercase(), " ", given),
                          _cat(family, " ", given)))
    latin = _typo(latin, _pick(r, k, 0.03) & foreign, r)
    hz_family, hz_given = _hanzi_names(P, V, pid, r, 0.03)
    return _where(foreign, latin, _cat(hz_family, hz_given))


def _health(P: _People, TL: _Timeline, V: _Vocab, seed: int, as_of_s: int) -> tuple[_Export, np.ndarray]:
    """Health commission export; also returns the persons who got a DOB identity conflict."""
    r = _rng(seed, "health")
    pid, is_reg, T, seen = _health_rows(TL, r, as_of_s)
    k = len(pid)
    # the first row of each person (in file order) carries an identity DOB conflict
    first_row = np.zeros(k, bool)
    first_row[np.unique(pid, return_index=True)[1]] = True
    dob_conflict = _identity_health_dob(P, TL, pid, first_row)
    name = _health_names(P, V, pid, r)
    dob = _dob_days(P, pid, r, 0.015)
    dob = np.where(dob_conflict, dob + r.choice([-1, 1], k) * r.integers(3 * 365, 12 * 365, k), dob)
    dob_missing = _pick(r, k, 0.03) & ~dob_conflict
    dob_s = _where(_pick(r, k, 0.5), _fmt_dates(dob, dob_missing, "%Y年%-m月%-d日"),
                   _fmt_dates(dob, dob_missing, "%Y-%m-%d"))
    kind = _doc_kind(P, pid)
    doc = _held_documents(P, pid, kind, P.reissued[pid] & _pick(r, k, 0.2))
    doc = _where((kind == 0) & _pick(r, k, 0.03), doc.str.replace("X", "x"), doc)
    doc = _typo(doc, _pick(r, k, 0.01), r, alphabet="0123456789")
    doc = _null_where(_pick(r, k, 0.04), doc)
    phone = _null_where(_pick(r, k, 0.06), _phone_formats(P.phone.gather(pid), r, (0.5, 0.3, 0.2, 0, 0)))
    port = TL.port[pid]
    hotel_names, hotel_district = _hotels()
    districts = _series(_DISTRICTS)
    fmt = "%Y/%m/%d %H:%M"
    record_id = _cat("HC-", _digits(np.arange(1, k + 1), max(7, len(str(k)))))
    frame = pl.DataFrame({
        "记录编号": record_id,
        "记录类型": _where(is_reg, "入境登记", "转运隔离"),
        "姓名": name,
        "性别": _null_where(_pick(r, k, 0.01), _series("男女").gather(P.sex[pid])),
        "出生日期": dob_s,
        "国籍": _nationality(P, pid, r, 2, 0.5, 0.03),
        "证件类型": _series(_DOC_TYPE_ZH).gather(kind),
        "证件号码": doc,
        "联系电话": phone,
        "航班车次": _null_where(~is_reg, _flights()[0].gather(TL.flight[pid])),
        "登记时间": _fmt_times(T[:, 1], seen[:, 1], fmt),
        "健康检查时间": _fmt_times(T[:, 2], seen[:, 2], fmt),
        "登记地点": _null_where(~is_reg, _series([p[2] for p in _PORTS]).gather(port)),
        "登记所在区": _null_where(~is_reg, districts.gather(np.array([p[1] for p in _PORTS])[port])),
        "转运时间": _fmt_times(T[:, 3], seen[:, 3], fmt),
        "转运车辆": _null_where(is_reg, TL.plate.gather(pid)),
        "隔离入住时间": _fmt_times(T[:, 4], seen[:, 4], fmt),
        "解除隔离时间": _fmt_times(T[:, 5], seen[:, 5], fmt),
        "隔离酒店": _null_where(is_reg, hotel_names.gather(TL.hotel[pid])),
        "酒店所在区": _null_where(is_reg, districts.gather(hotel_district[TL.hotel[pid]])),
        "目的地区": _null_where(is_reg, districts.gather(P.home[pid])),
    })
    events = [_stage_events(s, T[:, s], seen[:, s]) for s in range(1, 6)]
    return _Export(frame, record_id, pid, events), np.unique(pid[dob_conflict])


def _police_rows(P: _People, TL: _Timeline, r, as_of_s: int):
    """Handover rows (with duplicates registered again later) and other registrations, by time.

    Returns (pid, is_handover, time, police station) per row."""
    n = P.n
    ho_pid, ho_dup = _with_duplicates(r, np.flatnonzero(TL.present[:, 6]), 0.015)
    other_pid = np.flatnonzero(_pick(r, n, 0.03) | ((P.cat != 0) & _pick(r, n, 0.08)))
    pid = np.concatenate([ho_pid, other_pid])
    k = len(pid)
    is_ho = np.arange(k) < len(ho_pid)
    dup = np.concatenate([ho_dup, np.zeros(len(other_pid), bool)])
    # other registrations: a stay after release, or (still in quarantine) one before the trip
    released = TL.present[pid, 5]
    after_release = TL.T[pid, 5] + r.integers(_D, 30 * _D, k)
    t = np.where(is_ho, TL.T[pid, 6],
                 np.where(released & (after_release <= as_of_s), after_release,
                          TL.T[pid, 0] - r.integers(30 * _D, 365 * _D, k)))
    later = t + r.integers(_H, 30 * _H, k)
    t = np.where(dup & (later <= as_of_s), later, t)
    other_district = _weighted(r, _DISTRICT_W, k)
    station = np.where(is_ho, TL.station[pid], other_district * 4 + r.integers(0, 4, k))
    order = _sort_rows([t, r.random(k)])
    return pid[order], is_ho[order], t[order], station[order]


def _police_names(P: _People, V: _Vocab, pid, r) -> tuple[pl.Series, pl.Series]:
    """(姓, 名): hanzi for Chinese names, upper-case Latin otherwise (2% swapped)."""
    k = len(pid)
    foreign = P.cat[pid] == 1
    given, family = _latin_names(P, V, pid, r, p_variant=0.20, p_drop_second=0.4)
    given, family = given.str.to_uppercase(), family.str.to_uppercase()
    given = _typo(given, _pick(r, k, 0.02) & foreign, r)
    hz_family, hz_given = _hanzi_names(P, V, pid, r, 0.02)
    fam_col, giv_col = _where(foreign, family, hz_family), _where(foreign, given, hz_given)
    swap = _pick(r, k, 0.02) & foreign
    return _where(swap, giv_col, fam_col), _where(swap, fam_col, giv_col)


def _police(P: _People, TL: _Timeline, V: _Vocab, seed: int, as_of_s: int) -> tuple[_Export, np.ndarray]:
    """Police residence registrations; also returns the persons given a conflicting resident ID."""
    r = _rng(seed, "police")
    pid, is_ho, t, station = _police_rows(P, TL, r, as_of_s)
    k = len(pid)
    foreign = P.cat[pid] == 1
    kind = _doc_kind(P, pid)
    conflict = (TL.brk[pid] == _BREAK_NAMES.index("identity")) & (P.cat[pid] == 0) & is_ho
    fam_col, giv_col = _police_names(P, V, pid, r)
    doc = _held_documents(P, pid, kind, P.reissued[pid] & _pick(r, k, 0.1), other_id=conflict)
    doc = _typo(doc, _pick(r, k, 0.005) & ~conflict, r, alphabet="0123456789")
    doc = _null_where(_pick(r, k, 0.01) & ~conflict, doc)
    reg_type = _where(is_ho, "社区移交登记",
                      _series(_POLICE_OTHER_TYPES).gather(np.where(foreign, r.integers(0, 2, k), 2)))
    record_id = _daily_ids("GA", t, 6)
    frame = pl.DataFrame({
        "登记编号": record_id,
        "登记类型": reg_type,
        "姓": fam_col,
        "名": giv_col,
        "性别": _series("男女").gather(P.sex[pid]),
        "出生日期": _fmt_dates(_dob_days(P, pid, r, 0.015), _pick(r, k, 0.02), "%d/%m/%Y"),
        "国籍": _nationality(P, pid, r, 3, 0.0, 0.01),
        "证件类型": _series(_DOC_TYPE_ZH).gather(kind),
        "证件号码": doc,
        "联系电话": _null_where(_pick(r, k, 0.20), _phone_formats(P.phone.gather(pid), r, (0.9, 0, 0, 0.1, 0))),
        "居住地址": P.address.gather(pid),
        "登记时间": _fmt_times(t, np.ones(k, bool), "%Y-%m-%d %H:%M:%S"),
        "派出所": _stations().gather(station),
        "所属区": _series(_DISTRICTS).gather(station // 4),
    })
    export = _Export(frame, record_id, pid, [_stage_events(6, t, is_ho)], station // 4)
    return export, np.unique(pid[conflict])


def _commerce(P: _People, V: _Vocab, seed: int, as_of_s: int) -> _Export:
    r = _rng(seed, "commerce")
    pid, _ = _with_duplicates(r, np.flatnonzero(P.employer >= 0), 0.02)
    employer = P.employer[pid]
    order = _sort_rows([employer, r.random(len(pid))])
    pid, employer = pid[order], employer[order]
    k = len(pid)
    given, family = _latin_names(P, V, pid, r, p_variant=0.35, p_hmt_pinyin=0.25, p_drop_second=0.4)
    name = _typo(_cat(family.str.to_uppercase(), ", ", given), _pick(r, k, 0.02), r)
    kind = _doc_kind(P, pid)
    doc = _held_documents(P, pid, kind, P.reissued[pid] & _pick(r, k, 0.6))
    spaced = _cat(doc.str.slice(0, 1), " ", doc.str.slice(1, 4), " ", doc.str.slice(5))
    doc = _where((kind == 1) & _pick(r, k, 0.5), spaced, doc)
    doc = _typo(doc, _pick(r, k, 0.01), r, alphabet="0123456789")
    canon_given, canon_family = _latin_names(P, V, pid, np.random.default_rng(0))
    mail = _cat(canon_given.str.to_lowercase().str.replace_all("[^a-z]", ""), ".",
                canon_family.str.to_lowercase().str.replace_all("[^a-z]", ""), "@")
    names, domains, work_district = _employers()
    email = _null_where(_pick(r, k, 0.15), _cat(mail, domains.gather(employer)))
    address = P.address.gather(pid)
    address = _where(_pick(r, k, 0.5), address.str.replace("北京市", ""), address)
    dob = _dob_days(P, pid, r, 0.02)
    record_id = _cat("C-", _digits(r.permutation(k) + 1, max(6, len(str(k)))))
    frame = pl.DataFrame({
        "编号": record_id,
        "姓名": name,
        "性别": _series("男女").gather(P.sex[pid]),
        "出生日期": pl.Series(np.where(_pick(r, k, 0.05), -1, dob + 25569)),   # Excel serial
        "国籍": _nationality(P, pid, r, 3, 0.5, 0.02),
        "证件类型": _series(_DOC_TYPE_ZH).gather(kind),
        "证件号码": _null_where(_pick(r, k, 0.03), doc),
        "联系电话": _null_where(_pick(r, k, 0.10), _phone_formats(P.phone.gather(pid), r, (0, 0.5, 0, 0, 0.5))),
        "电子邮箱": email,
        "用人单位": names.gather(employer),
        "工作地区": _series(_DISTRICTS).gather(work_district[employer]),
        "居住地址": address,
        "居住地区": _series(_DISTRICTS).gather(P.home[pid]),
        "入职日期": pl.Series(as_of_s // _D - r.integers(30, 3650, k) + 25569),
    })
    return _Export(frame, record_id, pid, [])


# --------------------------------------------------------------------------- corruption profiles

# One line each; `linkage sample --help` and the README list them from here.
CORRUPTIONS = {
    "unverified": "fails strict validation: phones without country code or mistyped, Deutschland, 07/14/1977",
    "doc_kinds": "a passport in one agency, a permanent-residence card or travel permit in another",
    "multi_phone": "several phones per person: home-country number and Chinese mobile, two in one cell",
    "reissued": "re-issued passports (a new number in some agencies); the same passport, a new phone",
    "thin": "quarantine and test records with only name, sex, nationality, phone; spelling variants",
    "duplicates": "a stage recorded twice: handovers minutes apart (one with a permit), re-entered registrations",
    "twins": "people who must stay apart: twins, families sharing phone, flight, hotel and address",
}

# Profiles that edit the same field group of existing rows get disjoint shares of the people (one
# shared draw per person), so no two profiles ever write the same cell and each does the same
# whatever else is applied.
_LOTS = {"phone": {"unverified": (0.00, 0.15), "multi_phone": (0.15, 0.40), "reissued": (0.40, 0.55)},
         "document": {"doc_kinds": (0.00, 0.25), "reissued": (0.25, 0.45), "thin": (0.45, 0.65)}}

# home-country mobiles: calling code, trunk prefix, prefixes, length of the national number
_HOME_PHONES = {
    "US": ("1", "", "201 202 212 213 305 312 415 617 646 702 713 718", 10),
    "CA": ("1", "", "416 437 514 604 613 647 778", 10),
    "GB": ("44", "0", "7400 7500 7711 7800 7900 7956 7960 7970 7980", 10),
    "AU": ("61", "0", "400 401 402 403 404 405 410 412 413 414", 9),
    "NZ": ("64", "0", "21 22 27", 9),
    "IE": ("353", "0", "83 85 86 87", 9),
    "DE": ("49", "0", "170 171 172 173 174 175", 10),
    "AT": ("43", "0", "660 664 676 680 699", 10),
    "CH": ("41", "0", "76 77 78 79", 9),
    "FR": ("33", "0", "60 61 62 64 65 66 67 68 73 74 75 76 77 78", 9),
    "BE": ("32", "0", "470 471 472 473 474 475 476 477 478 479 484 485 486 487 488 489 490 491 492 493 494 "
                      "495 496 497 498 499", 9),
    "RU": ("7", "8", "900 901 903 905 906 909 910 911 912 915 916 917 919 925 926 929 977 985 999", 10),
    "KZ": ("7", "8", "700 701 702 705 707 747 771 775 776 777 778", 10),
    "BY": ("375", "80", "29 33 44", 9),
    "EG": ("20", "0", "10 11 12 15", 10),
    "SA": ("966", "0", "50 53 54 55 56 58 59", 9),
    "AE": ("971", "0", "50 52 54 55 56 58", 9),
    "JO": ("962", "0", "79 775 776 777 781 785", 9),
    "PK": ("92", "0", "300 301 303 311 313 321 333 345", 10),
    "KR": ("82", "0", "102 103 104 106 107 108 109", 10),
    "JP": ("81", "0", "70 80 90", 10),
    "VN": ("84", "0", "32 33 34 35 36 37 38 39 90 91 93 94 96 97 98", 9),
    "ES": ("34", "", "600 605 609 610 615 616 619 620 625 626 627 629 630 636 639 646 650 655 660 666 669 "
                     "670 675 680 686 687 690 696 699", 9),
    "MX": ("52", "", "55 33 81", 10),
    "AR": ("54", "0", "112 113 114 115 116 117 118", 10),
    "CO": ("57", "", "300 301 310 311 312 313 314 315 316 317 318 320 321", 10),
    "CL": ("56", "", "9", 9),
    "IN": ("91", "0", "70 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 93 94 95 96 97 98 99", 10),
    "HK": ("852", "", "61 63 64 65 69 90 91 94 96 97", 8),
    "MO": ("853", "", "62 63 65 66", 8),
    "TW": ("886", "0", "9", 9),
}
# Chinese mobile prefixes that are not allocated (a clerk's slip on the first digits)
_UNALLOCATED_CN = ("120", "121", "124", "127", "128", "140", "141", "143", "144", "154", "160", "164", "168",
                   "169", "174", "179", "194")
# country names in neither English nor Chinese (endonyms and other languages' names)
_OTHER_COUNTRY_NAMES = {
    "US": "Estados Unidos|États-Unis|Vereinigte Staaten", "GB": "Royaume-Uni|Reino Unido|Vereinigtes Königreich",
    "CA": "Kanada|Canadá", "AU": "Australie|Australien", "NZ": "Aotearoa|Nouvelle-Zélande", "IE": "Éire|Irlande",
    "DE": "Deutschland|Allemagne|Alemania|Germania", "AT": "Österreich|Autriche", "CH": "Schweiz|Suisse|Svizzera",
    "FR": "Frankreich|Francia", "BE": "Belgique|België|Belgien", "RU": "Россия|Russland|Russie",
    "KZ": "Қазақстан|Казахстан", "BY": "Беларусь|Weißrussland", "EG": "مصر|Ägypten|Égypte",
    "SA": "السعودية|Arabie saoudite", "AE": "الإمارات|Émirats arabes unis", "JO": "الأردن|Jordanie",
    "PK": "پاکستان|Pakistán", "KR": "대한민국|한국|Corée du Sud|Südkorea", "JP": "日本|日本国|Nippon|Japon",
    "VN": "Việt Nam|Viêt Nam", "ES": "España|Espagne|Spanien", "MX": "México|Mexique", "AR": "Argentine|Argentinien",
    "CO": "Colombie|Kolumbien", "CL": "Chili|República de Chile", "IN": "भारत|Bhārat|Inde",
}
_ISO_NUMERIC = {"US": 840, "GB": 826, "CA": 124, "AU": 36, "NZ": 554, "IE": 372, "DE": 276, "AT": 40, "CH": 756,
                "FR": 250, "BE": 56, "RU": 643, "KZ": 398, "BY": 112, "EG": 818, "SA": 682, "AE": 784, "JO": 400,
                "PK": 586, "KR": 410, "JP": 392, "VN": 704, "ES": 724, "MX": 484, "AR": 32, "CO": 170, "CL": 152,
                "IN": 356}
_HMT_PASSPORT = {"HK": "K########", "MO": "MA#######", "TW": "3########"}
_PR_CARD = "外国人永久居留身份证"
_TIME_COLUMNS = {   # the event columns a new row's times are written to: stage, column, format
    "immigration": ((0, "ENTRY_TIME", "%Y-%m-%d %H:%M"),),
    "health": tuple((s, c, "%Y/%m/%d %H:%M") for s, c in
                    ((1, "登记时间"), (2, "健康检查时间"), (3, "转运时间"), (4, "隔离入住时间"), (5, "解除隔离时间"))),
    "police": ((6, "登记时间", "%Y-%m-%d %H:%M:%S"),),
    "commerce": (),
}
_ID_SCHEME = {"immigration": ("IMM", True, 5), "health": ("HC-", False, 7), "police": ("GA", True, 6),
              "commerce": ("C-", False, 6)}     # prefix, per-day sequence, sequence width
_CELL_SOURCES = ("health", "police", "commerce")   # the exports with phone, nationality and document cells


def corruption_names(values) -> tuple[str, ...]:
    """The profiles named by --corruption values (each may be a comma-separated list; "all" = every
    profile), in CORRUPTIONS order. Raises ValueError naming the valid profiles."""
    wanted = set()
    for value in [values] if isinstance(values, str) else values:
        for name in str(value).split(","):
            name = name.strip().lower().replace("-", "_")
            if name == "all":
                wanted |= set(CORRUPTIONS)
            elif name in CORRUPTIONS:
                wanted.add(name)
            elif name:
                raise ValueError(f"unknown corruption profile '{name}'; valid profiles: "
                                 f"{', '.join(CORRUPTIONS)} (or all)")
    return tuple(name for name in CORRUPTIONS if name in wanted)


@dataclass(frozen=True)
class _Alternates:
    """Each person's other identifiers, drawn once for everyone (whatever profiles are applied), so
    two profiles showing the same person's second number show the same one, and no number is
    anybody else's."""
    home_nsn: pl.Series        # home-country mobile, national number ("" for citizens)
    home_cc: pl.Series         # its calling code
    home_trunk: pl.Series      # its national trunk prefix
    home_split: np.ndarray     # length of its mobile prefix (for spacing)
    cn_phone: pl.Series        # a second Chinese mobile
    passport: pl.Series        # a re-issued passport number ("" for HK/Macao/Taiwan residents)
    pr_card: pl.Series         # permanent-residence card (foreigners), "" otherwise
    hmt_passport: pl.Series    # HKSAR / Macao SAR / ROC passport (HK/Macao/Taiwan), "" otherwise
    taken: pl.Series           # every document number in use (base and alternates)


def _fresh_patterned(r, patterns: np.ndarray, taken: pl.Series) -> pl.Series:
    """A new number per row in its pattern ("" pattern -> ""), distinct and not in taken."""
    names, code = np.unique(patterns.astype(str), return_inverse=True)
    out = pl.Series(values=[""] * len(patterns), dtype=pl.String)
    wanted = patterns != ""
    redraw = wanted
    for attempt in range(50):
        for c in np.unique(code[redraw]):
            idx = np.flatnonzero(redraw & (code == c))
            space = _pattern_space(names[c])
            values = r.integers(0, space, len(idx)) if attempt else _unique_ints(r, len(idx), space)
            out = out.scatter(idx, _pattern_strings(names[c], values))
        redraw = wanted & (out.is_in(taken.implode()) | ~out.is_first_distinct()).to_numpy()
        if not redraw.any():
            break
    return out


def _doc_patterns(numbers: pl.Series) -> np.ndarray:
    """The pattern of each number (first character kept, then @ letter, # digit)."""
    rest = numbers.str.slice(1).str.replace_all("[A-Z]", "@").str.replace_all("[0-9]", "#")
    return np.array(_cat(numbers.str.slice(0, 1), rest).to_list(), dtype=object)


def _home_phones(r, P: _People):
    """A home-country mobile for every non-citizen: (national number, calling code, trunk, prefix length)."""
    nsn = np.full(P.n, "", dtype=object)
    cc = np.full(P.n, "", dtype=object)
    trunk = np.full(P.n, "", dtype=object)
    split = np.zeros(P.n, np.int64)
    parts, where = [], []
    for iso, (code, trunk_prefix, prefixes, length) in _HOME_PHONES.items():
        m = np.flatnonzero((P.nat == _ISO[iso]) & (P.cat != 0))
        if len(m) == 0:
            continue
        options = prefixes.split()
        choice = r.integers(0, len(options), len(m))
        cc[m], trunk[m] = code, trunk_prefix
        for i, prefix in enumerate(options):
            idx = m[choice == i]
            rest = length - len(prefix)
            v = _unique_ints(r, len(idx), 8 * 10 ** (rest - 1))      # first digit 2-9
            parts.append(_cat(prefix, _digits(v + 2 * 10 ** (rest - 1), rest)))
            where.append(idx)
            split[idx] = len(prefix)
    out = pl.Series(values=[""] * P.n, dtype=pl.String)
    if parts:
        out = out.scatter(np.concatenate(where), pl.concat(parts))
    return out, _series(cc), _series(trunk), split


def _second_cn_phones(r, P: _People) -> pl.Series:
    """Another Chinese mobile per person, distinct and nobody's first number."""
    taken = P.phone.cast(pl.Int64).to_numpy()
    prefixes = np.array([int(p) for p in _PHONE_PREFIXES])
    numbers = prefixes[r.integers(0, len(prefixes), P.n)] * 10**8 + r.integers(0, 10**8, P.n)
    for _ in range(50):
        clash = np.isin(numbers, taken)
        _, first = np.unique(numbers, return_index=True)
        dup = np.ones(P.n, bool)
        dup[first] = False
        bad = clash | dup
        if not bad.any():
            break
        numbers[bad] = prefixes[r.integers(0, len(prefixes), int(bad.sum()))] * 10**8 + \
            r.integers(0, 10**8, int(bad.sum()))
    return _digits(numbers, 11)


def _pr_cards(r, P: _People) -> pl.Series:
    """Foreigners' permanent-residence card numbers: 70% the 18-digit form (9, province, ISO numeric
    country, birth date, sequence, MOD 11-2 check), 30% the older 15-character form (ISO alpha-3,
    province, YYMMDD, sequence, check digit). Distinct; "" for non-foreigners."""
    n = P.n
    foreign = P.cat == 1
    numeric = np.array([_ISO_NUMERIC.get(c[0], 0) for c in _COUNTRIES])[P.nat]
    alpha3 = _series([c[1] for c in _COUNTRIES]).gather(P.nat)
    province = np.array([11, 11, 11, 31, 44, 32])[r.integers(0, 6, n)]
    y, m, d = _days_to_ymd(P.dob)
    seq = r.integers(0, 500, n) * 2 + (P.sex == 0)
    idx = np.flatnonzero(foreign)
    for _ in range(50):
        b17 = ((9 * 100 + province) * 1000 + numeric) * 10**11 + (y * 10000 + m * 100 + d) * 1000 + seq
        _, first = np.unique(b17[idx], return_index=True)
        dup = np.ones(len(idx), bool)
        dup[first] = False
        if not dup.any():
            break
        seq[idx[dup]] = r.integers(0, 500, int(dup.sum())) * 2 + (P.sex[idx[dup]] == 0)
    new = _cat(_digits(b17, 17), _series(resident_id_check_chars(b17)))
    body = (province * 10**6 + (y % 100) * 10000 + m * 100 + d) * 1000 + seq
    digits = (body[:, None] // (10 ** np.arange(10, -1, -1, dtype=np.int64))) % 10
    check = (digits @ np.arange(1, 12)) % 10
    old = _cat(alpha3, _digits(body, 11), _digits(check, 1))
    card = _where(_pick(r, n, 0.7), new, old)
    return _null_where(~foreign, card).fill_null("")


def _alternates(P: _People, seed: int) -> _Alternates:
    nsn, cc, trunk, split = _home_phones(_rng(seed, "alternate-home-phones"), P)
    taken = pl.concat([P.rid, P.rid_alt, P.passport, P.old_passport, P.permit])
    taken = taken.filter(taken != "")
    renewed = _fresh_patterned(_rng(seed, "alternate-passports"),
                               np.where(P.cat != 2, _doc_patterns(P.passport), ""), taken)
    hmt_patterns = np.full(P.n, "", dtype=object)
    for iso, pattern in _HMT_PASSPORT.items():
        hmt_patterns[(P.nat == _ISO[iso]) & (P.cat == 2)] = pattern
    hmt = _fresh_patterned(_rng(seed, "alternate-hmt-passports"), hmt_patterns, pl.concat([taken, renewed]))
    pr = _pr_cards(_rng(seed, "alternate-pr-cards"), P)
    taken = pl.concat([taken, renewed, hmt, pr])
    return _Alternates(nsn, cc, trunk, split, _second_cn_phones(_rng(seed, "alternate-cn-phones"), P),
                       renewed, pr, hmt, taken.filter(taken != ""))


@dataclass
class _NewRows:
    """Rows a profile adds to one export, each placed right after the existing row it follows; the
    record ids are given when all profiles' rows are merged. times: [k, 7] event times (_NEVER
    where the row has none); the export's time columns are written from them."""
    source: str
    after: np.ndarray
    frame: pl.DataFrame
    pid: np.ndarray
    times: np.ndarray


@dataclass
class _Changes:
    """What one profile does: new values of existing cells, new rows, new people (rows of people
    n.. refer to people.*), and which people it touched out of how many it could apply to."""
    cells: list[tuple[str, str, np.ndarray, pl.Series]] = field(default_factory=list)
    rows: list[_NewRows] = field(default_factory=list)
    people: _People | None = None
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    eligible: int = 0

    def set(self, source: str, column: str, rows: np.ndarray, values) -> None:
        if len(rows):
            if not isinstance(values, pl.Series):
                values = pl.Series(values=[values] * len(rows), dtype=pl.String)
            self.cells.append((source, column, rows, values))


@dataclass
class _Base:
    """What every profile reads: the population and the exports before any corruption."""
    P: _People
    V: _Vocab
    exports: dict[str, _Export]
    seed: int
    as_of_s: int
    alt: _Alternates
    lots: dict[str, np.ndarray]

    def rng(self, profile: str) -> np.random.Generator:
        return _rng(self.seed, f"corruption:{profile}")

    def slot(self, group: str, profile: str) -> np.ndarray:
        """Per person: whether this profile may edit the person's fields of this group."""
        lo, hi = _LOTS[group][profile]
        return (self.lots[group] >= lo) & (self.lots[group] < hi)

    def cells(self, column: str, sources=_CELL_SOURCES, where=None) -> pl.DataFrame:
        """Non-empty cells of a column: source, row, pid, value (where: per-person mask)."""
        parts = []
        for name in sources:
            ex = self.exports[name]
            keep = ex.frame[column].is_not_null().to_numpy()
            if where is not None:
                keep &= where[ex.pid]
            rows = np.flatnonzero(keep)
            parts.append(pl.DataFrame({"source": pl.Series([name] * len(rows), dtype=pl.String),
                                       "row": rows, "pid": ex.pid[rows],
                                       "value": ex.frame[column].gather(rows).cast(pl.String)}))
        return pl.concat(parts)


def _first_per_person(pid: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Index of the row with the smallest key per person."""
    order = np.lexsort((key, pid))
    return order[np.unique(pid[order], return_index=True)[1]]


def _set_cells(ch: _Changes, cells: pl.DataFrame, column: str, values: pl.Series) -> None:
    for name in _CELL_SOURCES:
        mask = (cells["source"] == name).to_numpy()
        ch.set(name, column, cells["row"].to_numpy()[mask], values.filter(pl.Series(mask)))


def _one_agency(cells: pl.DataFrame, r) -> pl.DataFrame:
    """The cells of one randomly chosen agency per person."""
    agencies = cells.select("pid", "source").unique(maintain_order=True)
    chosen = agencies[_first_per_person(agencies["pid"].to_numpy(), r.random(agencies.height))]
    return cells.join(chosen, on=["pid", "source"], how="semi", maintain_order="left")


def _some_agencies(cells: pl.DataFrame, r, p: float) -> pl.DataFrame:
    """The cells of each agency of a person with probability p, at least one agency, and (where the
    person has two or more) not all."""
    agencies = cells.select("pid", "source").unique(maintain_order=True)
    pid = agencies["pid"].to_numpy()
    u = r.random(len(pid))
    take = u < p
    ones = _first_per_person(pid, u)           # the agency with the smallest draw
    keep = _first_per_person(pid, -u)          # the one with the largest
    _, inverse, count = np.unique(pid, return_inverse=True, return_counts=True)
    chosen = np.bincount(inverse, weights=take, minlength=len(count))
    take[ones[chosen[inverse[ones]] == 0]] = True
    take[keep[(count[inverse[keep]] > 1)]] = False
    return cells.join(agencies.filter(pl.Series(take)), on=["pid", "source"], how="semi", maintain_order="left")


def _cn_style(phone: pl.Series, r) -> pl.Series:
    """A Chinese mobile as clerks type it: 13800138000 or 138 0013 8000."""
    return _phone_formats(phone, r, (0.6, 0.4, 0, 0, 0))


def _international(alt: _Alternates, pid: np.ndarray, r) -> pl.Series:
    """Home numbers with their country code: +49 170 1234567, +491701234567 or 0049 1701234567."""
    nsn, cc, split = alt.home_nsn.gather(pid), alt.home_cc.gather(pid), pl.Series(alt.home_split[pid])
    frame = pl.DataFrame({"n": nsn, "c": cc, "k": split})
    spaced = frame.select(pl.concat_str([pl.lit("+"), pl.col("c"), pl.lit(" "), pl.col("n").str.slice(0, pl.col("k")),
                                         pl.lit(" "), pl.col("n").str.slice(pl.col("k"))])).to_series()
    style = _weighted(r, (0.6, 0.2, 0.2), len(pid))
    return _where(style == 0, spaced, _where(style == 1, _cat("+", cc, nsn), _cat("00", cc, " ", nsn)))


def _national(alt: _Alternates, pid: np.ndarray, r) -> pl.Series:
    """Home numbers as dialled at home, without the country code: 01701234567, 1701234567 or 0170 1234567."""
    nsn, trunk, split = alt.home_nsn.gather(pid), alt.home_trunk.gather(pid), pl.Series(alt.home_split[pid])
    frame = pl.DataFrame({"n": nsn, "t": trunk, "k": split})
    spaced = frame.select(pl.concat_str([pl.col("t"), pl.col("n").str.slice(0, pl.col("k")), pl.lit(" "),
                                         pl.col("n").str.slice(pl.col("k"))])).to_series()
    style = _weighted(r, (0.4, 0.3, 0.3), len(pid))
    return _where(style == 0, _cat(trunk, nsn), _where(style == 1, nsn, spaced))


def _touched(*parts) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(p, np.int64) for p in parts] or [np.zeros(0, np.int64)]))


def _other_country_names(column: int) -> _NameTable:
    """Per country, its names in neither English nor Chinese, minus any the column itself uses
    (日本 is a Chinese name too)."""
    own = _country_table(column)
    entries = []
    for i, country in enumerate(_COUNTRIES):
        mine = set(own.flat.slice(int(own.off[i]), int(own.nvar[i])).to_list())
        names = [x for x in _OTHER_COUNTRY_NAMES.get(country[0], "").split("|") if x and x not in mine]
        entries.append("|".join(names))
    return _NameTable.build(entries)


def _mistyped_cn(phone: pl.Series, r) -> tuple[pl.Series, pl.Series]:
    """(unallocated prefix, one digit mistyped) versions of Chinese mobiles."""
    k = len(phone)
    bad_prefix = _cat(_series(_UNALLOCATED_CN).gather(r.integers(0, len(_UNALLOCATED_CN), k)), phone.str.slice(3))
    number = phone.cast(pl.Int64).to_numpy()
    place = 10 ** (10 - r.integers(1, 11, k))                  # any digit but the leading 1
    digit = number // place % 10
    typo = number + ((digit + r.integers(1, 10, k)) % 10 - digit) * place
    return bad_prefix, _digits(typo, 11)


def _unverified(B: _Base) -> _Changes:
    """Values that fail strict validation but are still evidence.

    Phones (15% of people: their share of the phone lot): a non-citizen's home-country mobile in
    every phone cell (half of them), at least one written without its country code in these
    CN-default columns (01701234567, 1701234567, 2025550123), the others with it; everyone else
    one cell with an unallocated prefix (14012345678) or one mistyped digit (which may still be a
    valid number). Nationality: 15% of foreigners have one cell in a language that is neither
    English nor Chinese (Deutschland, Allemagne, España, Россия, 日本 in English, 대한민국).
    Birth date: 10% of the people with a police record have one written month first (07/14/1977)
    in that day-first column: invalid where the day is over 12, silently another date otherwise."""
    r = B.rng("unverified")
    P, ch = B.P, _Changes()
    n = P.n
    home_kind = (P.cat != 0) & _pick(r, n, 0.5)
    prefix_kind = _pick(r, n, 0.5)
    phones = B.cells("联系电话", where=B.slot("phone", "unverified"))
    pid = phones["pid"].to_numpy()
    home = home_kind[pid]
    national = _pick(r, len(pid), 0.6)
    _, inverse = np.unique(pid, return_inverse=True)
    first = _first_per_person(pid, np.arange(len(pid)))
    none = np.bincount(inverse, weights=national & home, minlength=len(first))[inverse[first]] == 0
    national[first[none]] = True
    written = _where(national, _national(B.alt, pid, r), _international(B.alt, pid, r))
    one = _first_per_person(pid, r.random(len(pid)))
    one = one[~home[one]]
    bad_prefix, typo = _mistyped_cn(P.phone.gather(pid[one]), r)
    mistyped = _cn_style(_where(prefix_kind[pid[one]], bad_prefix, typo), r)
    home_rows = np.flatnonzero(home)
    _set_cells(ch, phones[home_rows], "联系电话", written.gather(home_rows))
    _set_cells(ch, phones[one], "联系电话", mistyped)

    nats = B.cells("国籍", where=(P.cat == 1) & _pick(r, n, 0.15))
    nats = nats[_first_per_person(nats["pid"].to_numpy(), r.random(nats.height))]
    nat = P.nat[nats["pid"].to_numpy()]
    everywhere = np.ones(len(nat), bool)
    english, chinese = _other_country_names(2).spell(nat, everywhere, r), _other_country_names(3).spell(nat, everywhere, r)
    _set_cells(ch, nats, "国籍", _where((nats["source"] == "health").to_numpy(), english, chinese))

    police = B.exports["police"]
    rows = np.flatnonzero(police.frame["出生日期"].is_not_null().to_numpy())
    _, m, d = _days_to_ymd(P.dob[police.pid[rows]])
    rows = rows[(m != d) & _pick(r, n, 0.1)[police.pid[rows]]]
    rows = rows[_first_per_person(police.pid[rows], r.random(len(rows)))]
    ch.set("police", "出生日期", rows, _fmt_dates(P.dob[police.pid[rows]], np.zeros(len(rows), bool), "%m/%d/%Y"))

    ch.touched = _touched(pid[home_rows], pid[one], nats["pid"], police.pid[rows])
    ch.eligible = len(_touched(B.cells("联系电话")["pid"], B.cells("国籍", where=P.cat == 1)["pid"],
                               police.pid[police.frame["出生日期"].is_not_null().to_numpy()]))
    return ch


def _doc_kinds(B: _Base) -> _Changes:
    """Different kinds of document for one person: of the foreigners and HK/Macao/Taiwan residents
    with a document in police or commerce, 25% (their share of the document lot) show in every row
    of one of those two agencies a foreigner's permanent-residence card (外国人永久居留身份证, 18 or
    15 characters) or an HK/Macao/Taiwan resident's passport (HKSAR, Macao SAR or ROC), where
    immigration and the other agencies hold the passport or the travel permit."""
    r = B.rng("doc_kinds")
    P, ch = B.P, _Changes()
    docs = B.cells("证件号码", ("police", "commerce"), where=P.cat != 0)
    ch.eligible = docs["pid"].n_unique()
    docs = _one_agency(docs.filter(pl.Series(B.slot("document", "doc_kinds")[docs["pid"].to_numpy()])), r)
    pid = docs["pid"].to_numpy()
    foreign = P.cat[pid] == 1
    _set_cells(ch, docs, "证件类型", _where(foreign, _PR_CARD, "护照"))
    _set_cells(ch, docs, "证件号码", _where(foreign, B.alt.pr_card.gather(pid), B.alt.hmt_passport.gather(pid)))
    ch.touched = np.unique(pid)
    return ch


def _multi_phone(B: _Base) -> _Changes:
    """More than one phone per person (25% of the people with a phone: their share of the phone
    lot): a non-citizen's home-country number (+49 170 1234567), a citizen's second Chinese
    mobile. Of those with phones in two or more agencies, 60% show the other number in every row
    of one agency; the others, and everyone with one agency, get one cell holding both numbers
    ("13812345678 / +49 170 1234567")."""
    r = B.rng("multi_phone")
    P, ch = B.P, _Changes()
    whole = _pick(r, P.n, 0.6)
    phones = B.cells("联系电话")
    ch.eligible = phones["pid"].n_unique()
    phones = phones.filter(pl.Series(B.slot("phone", "multi_phone")[phones["pid"].to_numpy()]))
    agencies = phones.group_by("pid").agg(pl.col("source").n_unique().alias("agencies"))
    phones = phones.join(agencies, on="pid", how="left", maintain_order="left")
    split = (phones["agencies"].to_numpy() >= 2) & whole[phones["pid"].to_numpy()]
    agency = _one_agency(phones.filter(pl.Series(split)), r)
    cell = phones.filter(pl.Series(~split))
    cell = cell[_first_per_person(cell["pid"].to_numpy(), r.random(cell.height))]

    def other(pid: np.ndarray) -> pl.Series:
        return _where(P.cat[pid] != 0, _international(B.alt, pid, r), _cn_style(B.alt.cn_phone.gather(pid), r))

    _set_cells(ch, agency, "联系电话", other(agency["pid"].to_numpy()))
    pid = cell["pid"].to_numpy()
    sep = _series([" / ", "/", "; ", ", "]).gather(_weighted(r, (0.6, 0.15, 0.15, 0.1), len(pid)))
    mine, second = cell["value"], other(pid)
    _set_cells(ch, cell, "联系电话", _where(_pick(r, len(pid), 0.5), _cat(mine, sep, second), _cat(second, sep, mine)))
    ch.touched = _touched(agency["pid"], pid)
    return ch


def _reissued(B: _Base) -> _Changes:
    """Re-issued passports and changed phones. Passports: of the foreigners with a passport in
    health, police or commerce, 20% (their share of the document lot) show a new number in some
    of those agencies (each 60%, at least one, not all where there are several); immigration and
    the rest keep the current one, and name, birth date and phone stay. Phones: of the people with
    a phone in two or more agencies, 15% (their share of the phone lot) show a new Chinese mobile
    in some agencies and the old one in the others; the documents stay."""
    r = B.rng("reissued")
    P, ch = B.P, _Changes()
    docs = B.cells("证件号码", where=P.cat == 1)
    docs_pid = docs["pid"].to_numpy()
    renewed = _some_agencies(docs.filter(pl.Series(B.slot("document", "reissued")[docs_pid])), r, 0.6)
    _set_cells(ch, renewed, "证件号码", B.alt.passport.gather(renewed["pid"].to_numpy()))
    phones = B.cells("联系电话")
    agencies = phones.group_by("pid").agg(pl.col("source").n_unique().alias("agencies"))
    phones = phones.join(agencies.filter(pl.col("agencies") >= 2), on="pid", how="semi", maintain_order="left")
    phones_pid = phones["pid"].to_numpy()
    changed = _some_agencies(phones.filter(pl.Series(B.slot("phone", "reissued")[phones_pid])), r, 0.5)
    _set_cells(ch, changed, "联系电话", _cn_style(B.alt.cn_phone.gather(changed["pid"].to_numpy()), r))
    ch.touched = _touched(renewed["pid"], changed["pid"])
    ch.eligible = len(_touched(docs_pid, phones_pid))
    return ch


def _drop_or_double(s: pl.Series, mask: np.ndarray, r) -> pl.Series:
    """One letter (never the first) dropped or doubled on the masked rows: Meier -> Mier, Meierr."""
    idx = np.flatnonzero(mask & (s.str.len_chars().to_numpy() >= 3))
    k = len(idx)
    df = pl.DataFrame({"s": s.gather(idx), "u": r.random(k), "drop": _pick(r, k, 0.5)})
    n = pl.col("s").str.len_chars()
    pos = (pl.col("u") * (n - 1)).floor().cast(pl.Int64) + 1
    head, char, tail = pl.col("s").str.slice(0, pos), pl.col("s").str.slice(pos, 1), pl.col("s").str.slice(pos + 1)
    out = df.select(pl.when(pl.col("drop")).then(pl.concat_str([head, tail]))
                    .otherwise(pl.concat_str([head, char, char, tail]))).to_series()
    return s.scatter(idx, out)


def _thin_names(P: _People, V: _Vocab, pid, r) -> pl.Series:
    """Names as a hotel list or a test site writes them: spelling variants (Stefan/Stephan,
    Kato/Katou, Mohammed/Muhammad, Aleksandr/Alexander, Luis/Luiz), 35% with a dropped or doubled
    letter; hanzi with a homophone for 30%."""
    k = len(pid)
    foreign = P.cat[pid] == 1
    given, family = _latin_names(P, V, pid, r, p_variant=0.7, p_drop_second=0.5)
    given = _where(_pick(r, k, 0.5), given.str.replace(r"^Luis$", "Luiz"), given)
    typo, on_family = _pick(r, k, 0.35), _pick(r, k, 0.5)
    family = _drop_or_double(family, typo & on_family, r)
    given = _drop_or_double(given, typo & ~on_family, r)
    latin = _where(_pick(r, k, 0.6), _cat(given, " ", family), _cat(family.str.to_uppercase(), " ", given))
    hz_family, hz_given = _hanzi_names(P, V, pid, r, 0.3)
    return _where(foreign, latin, _cat(hz_family, hz_given))


def _row_times(ex: _Export) -> np.ndarray:
    """[rows, 7] event times of an export's rows, _NEVER where a row has no such event."""
    T = np.full((ex.frame.height, len(STAGES)), _NEVER, dtype=np.int64)
    for stage, rows, secs in ex.events:
        T[rows, stage] = secs
    return T


def _blank_rows(frame: pl.DataFrame, keep: tuple[str, ...]) -> pl.DataFrame:
    return frame.select([pl.col(c) if c in keep else pl.lit(None, dtype=frame.schema[c]).alias(c)
                         for c in frame.columns])


def _thin(B: _Base) -> _Changes:
    """Quarantine and test records that carry only name, sex, nationality and phone. Of the people
    with a quarantine row, 20% (their share of the document lot) have every quarantine row without
    birth date and document and the name written again (_thin_names); half of them also get one or
    two nucleic-acid test rows (记录类型 核酸检测: no chain event) with just those four fields. The
    quarantine rows keep their times, hotel and destination, so the chain is unchanged."""
    r = B.rng("thin")
    P, ch = B.P, _Changes()
    health = B.exports["health"]
    quarantine = health.frame["记录类型"].to_numpy() == "转运隔离"
    ch.eligible = len(np.unique(health.pid[quarantine]))
    rows = np.flatnonzero(quarantine & B.slot("document", "thin")[health.pid])
    pid = health.pid[rows]
    ch.set("health", "姓名", rows, _thin_names(P, B.V, pid, r))
    for column in ("出生日期", "证件类型", "证件号码"):
        ch.set("health", column, rows, pl.Series(values=[None] * len(rows), dtype=pl.String))
    first = rows[_first_per_person(pid, rows)]
    tests = np.repeat(first, np.where(_pick(r, len(first), 0.5), 1 + _pick(r, len(first), 0.4), 0))
    frame = _blank_rows(health.frame[tests], ("性别", "国籍", "联系电话")).with_columns(
        pl.lit("核酸检测").alias("记录类型"), _thin_names(P, B.V, health.pid[tests], r).alias("姓名"))
    times = np.full((len(tests), len(STAGES)), _NEVER, dtype=np.int64)
    ch.rows.append(_NewRows("health", tests, frame, health.pid[tests], times))
    ch.touched = np.unique(pid)
    return ch


def _first_rows(ex: _Export, mask: np.ndarray) -> np.ndarray:
    """The first masked row (in file order) of each person."""
    rows = np.flatnonzero(mask)
    return rows[_first_per_person(ex.pid[rows], rows)]


def _duplicates(B: _Base) -> _Changes:
    """One stage recorded twice (new record ids; the earliest time per stage, so the chain, is
    unchanged). 17% of the people with a handover get a second handover registration 2-45 minutes
    after the first (never after as_of), 70% of them with another of their documents: a
    foreigner's permanent-residence card, a citizen's passport instead of the resident ID, an
    HK/Macao/Taiwan resident's passport instead of the permit; 20% without the phone. 17% of the
    people with a health registration have it entered again 0-10 minutes later with small
    differences: the name typed again (50%), the phone in another format (30%) or left out (15%),
    no birth date (15%), no document (15%)."""
    r = B.rng("duplicates")
    P, ch = B.P, _Changes()
    twice_police, twice_health = _pick(r, P.n, 0.17), _pick(r, P.n, 0.17)
    police = B.exports["police"]
    times = _row_times(police)
    handovers = _first_rows(police, times[:, 6] != _NEVER)
    src = handovers[twice_police[police.pid[handovers]]]
    pid, k = police.pid[src], len(src)
    t = times[src]
    t[:, 6] = np.minimum(t[:, 6] + r.integers(120, 2700, k), B.as_of_s)
    cat = P.cat[pid]
    other_type = _where(cat == 1, _PR_CARD, "护照")
    other_no = _where(cat == 0, P.passport.gather(pid),
                      _where(cat == 1, B.alt.pr_card.gather(pid), B.alt.hmt_passport.gather(pid)))
    swap = _pick(r, k, 0.7)
    frame = police.frame[src]
    frame = frame.with_columns(_where(swap, other_type, frame["证件类型"]).alias("证件类型"),
                               _where(swap, other_no, frame["证件号码"]).alias("证件号码"),
                               _null_where(_pick(r, k, 0.2), frame["联系电话"]).alias("联系电话"))
    ch.rows.append(_NewRows("police", src, frame, pid, t))

    health = B.exports["health"]
    times = _row_times(health)
    registrations = _first_rows(health, health.frame["记录类型"].to_numpy() == "入境登记")
    src_h = registrations[twice_health[health.pid[registrations]]]
    pid_h, k = health.pid[src_h], len(src_h)
    t = times[src_h]
    later = t[:, 1] + r.integers(0, 11, k) * _MIN
    t[:, 1] = np.where((t[:, 1] != _NEVER) & (later <= B.as_of_s), later, t[:, 1])
    frame = health.frame[src_h]
    name = _where(_pick(r, k, 0.5), _health_names(P, B.V, pid_h, r), frame["姓名"])
    phone = _where(_pick(r, k, 0.3), _phone_formats(P.phone.gather(pid_h), r, (0.5, 0.3, 0.2, 0, 0)), frame["联系电话"])
    frame = frame.with_columns(name.alias("姓名"), _null_where(_pick(r, k, 0.15), phone).alias("联系电话"),
                               _null_where(_pick(r, k, 0.15), frame["出生日期"]).alias("出生日期"),
                               _null_where(_pick(r, k, 0.15), frame["证件号码"]).alias("证件号码"))
    ch.rows.append(_NewRows("health", src_h, frame, pid_h, t))
    ch.touched = _touched(pid, pid_h)
    ch.eligible = len(_touched(police.pid[handovers], health.pid[registrations]))
    return ch


def _one_digit_apart(numbers: pl.Series, taken: pl.Series, r) -> pl.Series:
    """Each number with its last digit changed (+1, -1, +2, ...; a twin's passport applied for
    together), distinct and not in taken; where none is free, a new number of the same pattern."""
    k = len(numbers)
    head, last = numbers.str.head(-1), numbers.str.tail(1).cast(pl.Int64).to_numpy()
    out = numbers.clone()
    pending = np.ones(k, bool)
    for step in (1, 9, 2, 8, 3, 7, 4, 6, 5):
        idx = np.flatnonzero(pending)
        if len(idx) == 0:
            break
        cand = _cat(head.gather(idx), _digits((last[idx] + step) % 10, 1))
        free = (~cand.is_in(taken.implode()) & cand.is_first_distinct()).to_numpy()
        out = out.scatter(idx[free], cand.filter(pl.Series(free)))
        taken = pl.concat([taken, cand.filter(pl.Series(free))])
        pending[idx[free]] = False
    idx = np.flatnonzero(pending)
    if len(idx):
        out = out.scatter(idx, _fresh_patterned(r, _doc_patterns(numbers.gather(idx)), taken))
    return out


def _kin_resident_ids(r, P: _People, origin, sex, dob, taken: pl.Series) -> pl.Series:
    """Valid, new resident IDs for citizen kin: the traveler's area code, their own birth date."""
    ids = pl.Series(values=[""] * len(origin), dtype=pl.String)
    idx = np.flatnonzero(P.cat[origin] == 0)
    area = P.rid.gather(origin[idx]).str.slice(0, 6).cast(pl.Int64).to_numpy()
    y, m, d = _days_to_ymd(dob[idx])
    seq = r.integers(1, 498, len(idx))
    taken_b17 = taken.filter(taken.str.contains(r"^\d{17}[\dX]$")).str.slice(0, 17).cast(pl.Int64).to_numpy()
    for _ in range(50):
        b17 = ((area * 10**8 + y * 10000 + m * 100 + d) * 1000 + 2 * seq + (sex[idx] == 0)).astype(np.int64)
        _, first = np.unique(b17, return_index=True)
        bad = np.isin(b17, taken_b17)
        bad[np.setdiff1d(np.arange(len(idx)), first)] = True
        if not bad.any():
            break
        seq[bad] = r.integers(1, 498, int(bad.sum()))
    return ids.scatter(idx, _cat(_digits(b17, 17), _series(resident_id_check_chars(b17))))


def _kin(B: _Base, origin: np.ndarray, twin: np.ndarray, r) -> _People:
    """The twins and family members of the travelers `origin` (twin: a twin, else a spouse, child
    or sibling), as people of their own: shared family name (not a Chinese spouse's), phone,
    address and destination; own given name, birth date (a twin's is the same) and documents (a
    twin's one digit apart from the traveler's)."""
    P, V = B.P, B.V
    m = len(origin)
    as_of_days = B.as_of_s // _D
    age = as_of_days - P.dob[origin]
    u = r.random(m)
    spouse = ~twin & (age >= 22 * 365) & (u < 0.45)
    child = ~twin & ~spouse & (age >= 30 * 365) & (u < 0.8)
    sex = np.where(spouse, 1 - P.sex[origin], r.integers(0, 2, m)).astype(np.int8)
    child_age = 20 * 365 + (r.random(m) * np.maximum(np.minimum(age - 365, 40 * 365) - 20 * 365, 1)).astype(np.int64)
    apart = r.integers(365, 8 * 365, m) * np.where(_pick(r, m, 0.5), 1, -1)
    dob = np.select([twin, spouse, child], [P.dob[origin], P.dob[origin] + r.integers(-6 * 365, 6 * 365 + 1, m),
                                            P.dob[origin] + child_age], P.dob[origin] + apart)
    dob = np.minimum(dob, as_of_days - 200)
    cat, lang = P.cat[origin], P.lang[origin]
    zfam = np.where(spouse & (P.zfam[origin] >= 0), _zipf_index(r, len(V.sur_hz), m, 0.7), P.zfam[origin])
    zg1, zg2, fgiv = P.zg1[origin].copy(), P.zg2[origin].copy(), P.fgiv[origin].copy()
    for _ in range(20):
        same = (zg1 == P.zg1[origin]) & (zg2 == P.zg2[origin]) & (fgiv == P.fgiv[origin])
        if not same.any():
            break
        idx = np.flatnonzero(same)
        g1, g2 = _draw_zh_given(r, V, sex[idx])
        zh = P.zg1[origin[idx]] >= 0
        zg1[idx], zg2[idx] = np.where(zh, g1, -1), np.where(zh, g2, -1)
        fgiv[idx] = np.where(P.fgiv[origin[idx]] >= 0, _draw_foreign_given(r, V, lang[idx], sex[idx]), -1)
    taken = B.alt.taken
    rid = _kin_resident_ids(r, P, origin, sex, dob, taken)
    holder = cat != 2
    documents = _where(holder, P.passport.gather(origin), P.permit.gather(origin))
    own = _fresh_patterned(r, np.where(twin, "", _doc_patterns(documents)), taken)
    twins = np.flatnonzero(twin)
    own = own.scatter(twins, _one_digit_apart(documents.gather(twins), pl.concat([taken, own]), r))
    none = pl.Series(values=[""] * m, dtype=pl.String)
    return _People(m, cat, P.nat[origin], lang, sex, dob, zfam, zg1, zg2, P.ffam[origin], P.ffam2[origin], fgiv,
                   rid, none, _where(holder, own, ""), none, np.zeros(m, bool), _where(holder, "", own),
                   P.phone.gather(origin), P.home[origin], P.address.gather(origin), np.full(m, -1),
                   (np.zeros(0, np.int64), np.zeros(0, np.int64)))


def _kin_rows(B: _Base, K: _People, origin: np.ndarray, source: str, firsts: np.ndarray, r) -> _NewRows:
    """Copies of the travelers' rows `firsts` of one export for their kin, identity written anew
    the way that agency writes it; phone, address, flight, hotel and times stay."""
    ex = B.exports[source]
    members = pl.DataFrame({"j": np.arange(len(origin)), "pid": origin})
    pairs = members.join(pl.DataFrame({"pid": ex.pid[firsts], "row": firsts}), on="pid", how="inner").sort("row", "j")
    src, j = pairs["row"].to_numpy(), pairs["j"].to_numpy()
    k = len(j)
    frame = ex.frame[src]
    kind = _doc_kind(K, j)
    dob = K.dob[j]
    never = np.zeros(k, bool)
    if source == "immigration":
        kind = np.maximum(kind, 1)
        frame = frame.with_columns(
            _immigration_names(K, B.V, j, r).alias("FULL_NAME"), _series("MF").gather(K.sex[j]).alias("SEX"),
            _fmt_dates(dob, never, "%Y%m%d").alias("DATE_OF_BIRTH"),
            _where(kind == 1, K.passport.gather(j), K.permit.gather(j)).alias("TRAVEL_DOC_NO"))
    elif source == "health":
        frame = frame.with_columns(
            _health_names(K, B.V, j, r).alias("姓名"), _series("男女").gather(K.sex[j]).alias("性别"),
            _where(_pick(r, k, 0.5), _fmt_dates(dob, never, "%Y年%-m月%-d日"), _fmt_dates(dob, never, "%Y-%m-%d"))
            .alias("出生日期"),
            _held_documents(K, j, kind, never).alias("证件号码"))
    else:
        family, given = _police_names(K, B.V, j, r)
        frame = frame.with_columns(
            family.alias("姓"), given.alias("名"), _series("男女").gather(K.sex[j]).alias("性别"),
            _fmt_dates(dob, never, "%d/%m/%Y").alias("出生日期"), _held_documents(K, j, kind, never).alias("证件号码"))
    return _NewRows(source, src, frame, B.P.n + j, _row_times(ex)[src])


def _twins(B: _Base) -> _Changes:
    """People who must stay apart. Of the travelers with an arrival record (other than the
    generator's own twins), 4% get a twin (same family name, birth date, phone, flight, hotel,
    address and chain times; another given name, passport or permit and resident ID one digit
    apart) and 8% travel with one (70%) or two family members: a spouse (a Chinese spouse keeps
    her or his own family name), a child or a sibling, with their own given name, birth date and
    documents. The kin's rows are copies of the traveler's first immigration, health registration,
    quarantine and police handover rows (commerce is not copied) with the identity written anew
    the way each agency writes it."""
    r = B.rng("twins")
    P = B.P
    imm = B.exports["immigration"]
    arrived = np.zeros(P.n, bool)
    arrived[imm.pid] = True
    arrived[np.concatenate(P.twin_pairs)] = False
    u = r.random(P.n)
    twin = arrived & (u < 0.04)
    family = arrived & (u >= 0.04) & (u < 0.12)
    size = np.where(twin, 1, np.where(family, 1 + _pick(r, P.n, 0.3), 0))
    origin = np.repeat(np.arange(P.n), size)
    K = _kin(B, origin, twin[origin], r)
    ch = _Changes(people=K, eligible=int(arrived.sum()))
    health, police = B.exports["health"], B.exports["police"]
    firsts = {"immigration": _first_rows(imm, np.ones(imm.frame.height, bool)),
              "health": np.concatenate([_first_rows(health, health.frame["记录类型"].to_numpy() == kind)
                                        for kind in ("入境登记", "转运隔离")]),
              "police": _first_rows(police, _row_times(police)[:, 6] != _NEVER)}
    for source, rows in firsts.items():
        ch.rows.append(_kin_rows(B, K, origin, source, rows, r))
    ch.touched = _touched(origin, P.n + np.arange(len(origin)))
    return ch


_PROFILES = {"unverified": _unverified, "doc_kinds": _doc_kinds, "multi_phone": _multi_phone,
             "reissued": _reissued, "thin": _thin, "duplicates": _duplicates, "twins": _twins}


def _next_record_ids(source: str, existing: pl.Series, times: np.ndarray) -> pl.Series:
    """Record ids for new rows that continue the export's scheme: the next sequence numbers (of
    the day of the row's first event, for the per-day schemes)."""
    prefix, daily, width = _ID_SCHEME[source]
    k = len(times)
    size = len(prefix) + (8 if daily else 0)
    if daily:
        day = times.min(axis=1) // _D
        heads = _cat(prefix, _fmt_dates(day, np.zeros(k, bool), "%Y%m%d"))
    else:
        heads = pl.Series(values=[prefix] * k, dtype=pl.String)
    used = pl.DataFrame({"head": existing.str.slice(0, size), "seq": existing.str.slice(size)}).group_by("head").agg(
        pl.col("seq").cast(pl.Int64).max().alias("top"), pl.col("seq").str.len_chars().max().alias("width"))
    new = pl.DataFrame({"head": heads, "i": np.arange(k)}).join(used, on="head", how="left").sort("i")
    seq = new["top"].fill_null(0) + new.select(pl.int_range(1, pl.len() + 1).over("head")).to_series()
    digits = max(width, int(new["width"].max() or 0), len(str(int(seq.max() or 0))))
    return _cat(new["head"], seq.cast(pl.String).str.zfill(digits))


def _merge(source: str, ex: _Export, frame: pl.DataFrame, new: list[tuple[int, _NewRows]]) -> tuple[_Export, np.ndarray]:
    """The export with the new rows placed after their rows (in profile order); and where each
    old row went."""
    k = frame.height
    after = np.concatenate([nr.after for _, nr in new])
    times = np.concatenate([nr.times for _, nr in new])
    added = pl.concat([nr.frame for _, nr in new])
    for stage, column, fmt in _TIME_COLUMNS[source]:
        added = added.with_columns(_fmt_times(times[:, stage], times[:, stage] != _NEVER, fmt).alias(column))
    record_id = _next_record_ids(source, ex.record_id, times)
    added = added.with_columns(record_id.alias(frame.columns[0]))
    profile = np.concatenate([np.full(len(nr.after), i + 1) for i, nr in new])
    order = np.lexsort((np.concatenate([np.zeros(k, np.int64), np.arange(len(after))]),
                        np.concatenate([np.zeros(k, np.int64), profile]),
                        np.concatenate([np.arange(k), after])))
    where = np.empty(len(order), np.int64)
    where[order] = np.arange(len(order))
    events = []
    for stage in range(len(STAGES)):
        rows = [where[old] for s, old, _ in ex.events if s == stage]
        secs = [t for s, _, t in ex.events if s == stage]
        present = np.flatnonzero(times[:, stage] != _NEVER)
        if rows or len(present):
            rows.append(where[k + present])
            secs.append(times[present, stage])
            events.append((stage, np.concatenate(rows), np.concatenate(secs)))
    district = None
    if ex.handover_district is not None:
        district = np.concatenate([ex.handover_district, ex.handover_district[after]])[order]
    merged = _Export(pl.concat([frame, added])[order], pl.concat([ex.record_id, record_id]).gather(order),
                     np.concatenate([ex.pid, np.concatenate([nr.pid for _, nr in new])])[order], events, district)
    return merged, where[:k]


def _apply(exports: dict[str, _Export], changes: list[_Changes]) -> tuple[dict[str, _Export], dict[str, np.ndarray]]:
    """Every profile's cell values written into the exports, then their new rows merged in; and per
    export where each original row is now."""
    out, moved = {}, {}
    for name, ex in exports.items():
        frame = ex.frame
        for ch in changes:
            for source, column, rows, values in ch.cells:
                if source == name:
                    frame = frame.with_columns(frame[column].scatter(rows, values.cast(frame.schema[column])))
        new = [(i, nr) for i, ch in enumerate(changes) for nr in ch.rows if nr.source == name]
        if new:
            out[name], moved[name] = _merge(name, ex, frame, new)
        else:
            out[name], moved[name] = replace(ex, frame=frame), np.arange(frame.height)
    return out, moved


# --------------------------------------------------------------------------- truth

def _observed_stages(n: int, exports: list[_Export]):
    """Earliest event per person and stage across all records; handover district of that event."""
    T = np.full((n, len(STAGES)), _NEVER, dtype=np.int64)
    ho_d = np.full(n, -1, np.int64)
    for ex in exports:
        for stage, rows, secs in ex.events:
            np.minimum.at(T[:, stage], ex.pid[rows], secs)
            if stage == 6 and ex.handover_district is not None:
                pid = ex.pid[rows]
                order = np.lexsort((secs, pid))
                first = order[np.unique(pid[order], return_index=True)[1]]
                ho_d[pid[first]] = ex.handover_district[rows][first]
    return T, T != _NEVER, ho_d


def _chain_flags(T: np.ndarray, present: np.ndarray, handover_district: np.ndarray,
                destination: np.ndarray, as_of_s: int) -> list[tuple[np.ndarray, str, int]]:
    """The default chain's flags (person rows, flag code, stage index), evaluated as of a time."""
    flags = []
    for s in range(len(STAGES)):
        after, gap = _AFTER[s], _MAX_GAP[s]
        later = present[:, s + 1:].any(axis=1)
        due = np.zeros(len(T), bool)
        if after >= 0 and gap:
            due = present[:, after] & (T[:, after] + gap <= as_of_s)
        flags.append((np.flatnonzero(~present[:, s] & (later | due)), "MISSING_STAGE", s))
        if s:
            earlier = np.where(present[:, :s], T[:, :s], np.iinfo(np.int64).min).max(axis=1)
            flags.append((np.flatnonzero(present[:, s] & (T[:, s] < earlier)), "OUT_OF_ORDER", s))
        if after >= 0 and gap:
            both = present[:, s] & present[:, after]
            flags.append((np.flatnonzero(both & (T[:, s] - T[:, after] > gap)), "GAP_EXCEEDED", s))
    both = present[:, 5] & present[:, 4]
    flags.append((np.flatnonzero(both & (T[:, 5] - T[:, 4] < _MIN_RELEASE)), "EARLY_RELEASE", 5))
    known = present[:, 6] & (destination >= 0)
    flags.append((np.flatnonzero(known & (handover_district != destination)), "DISTRICT_MISMATCH", 6))
    return flags


def _person_ids(pid: np.ndarray) -> pl.Series:
    return _cat("P", _digits(pid + 1, 7))


def _truth_flags(home: np.ndarray, exports: dict[str, _Export], identity: np.ndarray, as_of_s: int) -> pl.DataFrame:
    """home: every person's destination district (people added by a corruption profile included)."""
    n = len(home)
    T, present, ho_d = _observed_stages(n, list(exports.values()))
    destination = np.full(n, -1, np.int64)
    health = exports["health"]
    q_rows = health.frame["记录类型"].to_numpy() == "转运隔离"
    destination[health.pid[q_rows]] = home[health.pid[q_rows]]
    flags = _chain_flags(T, present, ho_d, destination, as_of_s)
    flags.append((identity, "IDENTITY_CONFLICT", len(STAGES)))
    pid = np.concatenate([f[0] for f in flags])
    stage = np.concatenate([np.full(len(f[0]), f[2]) for f in flags])
    code = np.concatenate([np.full(len(f[0]), i) for i, f in enumerate(flags)])
    order = np.lexsort((code, stage, pid))
    pid, stage, code = pid[order], stage[order], code[order]
    return pl.DataFrame({
        "person_id": _person_ids(pid),
        "flag": _series([f[1] for f in flags]).gather(code),
        "stage": _take(_series(STAGES), np.where(stage < len(STAGES), stage, -1)),
    })


def _truth_entities(exports: dict[str, _Export]) -> pl.DataFrame:
    return pl.concat([
        pl.DataFrame({"source": pl.Series([name] * len(ex.pid), dtype=pl.String),
                      "record_id": ex.record_id, "person_id": _person_ids(ex.pid)})
        for name, ex in exports.items()])


# --------------------------------------------------------------------------- writing

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"
_XLSX_PARTS = {
    "[Content_Types].xml":
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.spreadsheetml.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        f'<Override PartName="/docProps/app.xml" ContentType="{_CT}.extended-properties+xml"/></Types>',
    "_rels/.rels":
        f'<Relationships xmlns="{_NS_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/>'
        f'<Relationship Id="rId2" Type="{_NS_PKG_REL}/metadata/core-properties" Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{_NS_REL}/extended-properties" Target="docProps/app.xml"/>'
        '</Relationships>',
    "docProps/app.xml":
        '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
        '<Application>Microsoft Excel</Application></Properties>',
    "docProps/core.xml":
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>{author}</dc:creator>'
        '<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
        '<dcterms:modified xsi:type="dcterms:W3CDTF">{created}</dcterms:modified></cp:coreProperties>',
    "xl/workbook.xml":
        f'<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
        '<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels":
        f'<Relationships xmlns="{_NS_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_NS_REL}/styles" Target="styles.xml"/></Relationships>',
    "xl/styles.xml":
        f'<styleSheet xmlns="{_NS_MAIN}">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="等线"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>',
}


def _xlsx_rows(frame: pl.DataFrame, date_columns: set[str]) -> str:
    """The sheetData rows as XML, built column-wise: inline strings, dates as serial numbers."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    row = pl.int_range(2, pl.len() + 2).cast(pl.String)
    header = "".join(f'<c r="{letters[i]}1" t="inlineStr"><is><t>{c}</t></is></c>'
                     for i, c in enumerate(frame.columns))
    cells = []
    for i, name in enumerate(frame.columns):
        col = pl.col(name)
        if name in date_columns:
            cell = pl.when(col.is_null() | (col < 0)).then(pl.lit("")).otherwise(pl.concat_str(
                [pl.lit(f'<c r="{letters[i]}'), row, pl.lit('" s="1"><v>'), col.cast(pl.String),
                 pl.lit("</v></c>")]))
        else:
            text = col.str.replace_all("&", "&amp;", literal=True).str.replace_all(
                "<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True)
            cell = pl.when(col.is_null()).then(pl.lit("")).otherwise(pl.concat_str(
                [pl.lit(f'<c r="{letters[i]}'), row, pl.lit('" t="inlineStr"><is><t>'), text,
                 pl.lit("</t></is></c>")]))
        cells.append(cell)
    rows = frame.select(pl.concat_str([pl.lit('<row r="'), row, pl.lit('">'), *cells, pl.lit("</row>")])
                        .str.join("")).item()
    return f'<row r="1">{header}</row>{rows or ""}'


def _write_xlsx(frame: pl.DataFrame, path: Path, sheet: str, created: datetime, date_columns: set[str]) -> None:
    """A minimal, valid, deterministic .xlsx written without a per-row Python loop."""
    import zipfile

    parts = dict(_XLSX_PARTS)
    parts["docProps/core.xml"] = parts["docProps/core.xml"].format(
        author="商务局外资企业服务系统", created=f"{created:%Y-%m-%dT%H:%M:%S}Z")
    parts["xl/workbook.xml"] = parts["xl/workbook.xml"].format(sheet=sheet)
    parts["xl/worksheets/sheet1.xml"] = (
        f'<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><sheetData>'
        f'{_xlsx_rows(frame, date_columns)}</sheetData></worksheet>')
    stamp = (max(created.year, 1980), created.month, created.day, created.hour, created.minute, 0)
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("[Content_Types].xml", "_rels/.rels", "docProps/app.xml", "docProps/core.xml",
                     "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml",
                     "xl/worksheets/sheet1.xml"):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (_XML + parts[name]).encode("utf-8"), compresslevel=6)


def _blank_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    """Empty cells are written unquoted: an export has no "" values, only empty fields."""
    return frame.with_columns(pl.col(pl.String).replace("", None))


def _write_all(out_dir: Path, exports: dict[str, _Export], truth: dict[str, pl.DataFrame],
               as_of: datetime) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: dict[Path, Path] = {}

    def temp(name: str) -> Path:
        final = out_dir / name
        temps[final] = out_dir / f".{name}.{os.getpid()}.tmp"
        return temps[final]

    try:
        _blank_to_null(exports["immigration"].frame).write_csv(temp("immigration.csv"))
        _blank_to_null(exports["health"].frame).write_csv(temp("health.csv"), include_bom=True)
        text = _blank_to_null(exports["police"].frame).write_csv(line_terminator="\r\n")
        temp("police.csv").write_bytes(text.encode("gb18030"))
        _write_xlsx(exports["commerce"].frame, temp("commerce.xlsx"), COMMERCE_SHEET, as_of,
                    {"出生日期", "入职日期"})
        for name, frame in truth.items():
            _blank_to_null(frame).write_csv(temp(name))
    except BaseException:
        for t in temps.values():
            t.unlink(missing_ok=True)
        raise
    for final, t in temps.items():
        os.replace(t, final)
    counts = {FILES[name]: ex.frame.height for name, ex in exports.items()}
    counts.update({name: frame.height for name, frame in truth.items()})
    return counts


# --------------------------------------------------------------------------- entry point

def _validate(people: int, seed: int, as_of: datetime) -> None:
    if isinstance(people, bool) or not isinstance(people, int) or people < 1:
        raise ValueError(f"people must be a positive integer, got {people!r}")
    if people > MAX_PEOPLE:
        raise ValueError(f"people must be at most {MAX_PEOPLE:,}, got {people:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(as_of, datetime):
        raise ValueError(f"as_of must be a datetime, got {as_of!r}")
    if as_of.tzinfo is not None:
        raise ValueError("as_of must be a naive local time (the exports carry no time zone)")
    if not datetime(2000, 1, 1) <= as_of <= datetime(2100, 1, 1):
        raise ValueError(f"as_of must lie between 2000 and 2100, got {as_of:%Y-%m-%d %H:%M}")


def _observable(rid: pl.Series, exports: list[_Export], id_conflicts: np.ndarray) -> np.ndarray:
    """Of the persons whose police handover holds another resident ID, those whose own ID still
    shows intact in some record: where typos or missing values erased it, no one could tell.
    rid: every person's own resident ID ("" for none)."""
    shown = []
    for export in exports:
        own = export.frame["证件号码"].str.replace_all(r"\s", "").str.to_uppercase() == rid.gather(export.pid)
        shown.append(export.pid[own.fill_null(False).to_numpy()])
    return np.intersect1d(id_conflicts, np.concatenate(shown))


def _observable_dob(exports: dict[str, _Export], dob_conflicts: np.ndarray) -> np.ndarray:
    """Of the persons with a health DOB shifted by years (never blanked), those with a birth date
    in some other record to contradict it."""
    dated = []
    for export in exports.values():
        column = "DATE_OF_BIRTH" if "DATE_OF_BIRTH" in export.frame.columns else "出生日期"
        present = export.frame[column].cast(pl.Utf8).str.strip_chars().fill_null("") != ""
        dated.append(export.pid[present.to_numpy()])
    pids, counts = np.unique(np.concatenate(dated), return_counts=True)
    return np.intersect1d(dob_conflicts, pids[counts >= 2])


def _corrupt(profiles: tuple[str, ...], P: _People, V: _Vocab, exports: dict[str, _Export], seed: int,
             as_of_s: int, dob_conflicts: np.ndarray):
    """Apply the profiles to the exports. Returns the exports, every person's home district and
    resident ID (people added by a profile included), the DOB conflicts still shown, and per
    profile (people touched, people it could apply to)."""
    lots = _rng(seed, "corruption-lots")
    B = _Base(P, V, exports, seed, as_of_s, _alternates(P, seed),
              {"phone": lots.random(P.n), "document": lots.random(P.n)})
    changes = [_PROFILES[name](B) for name in profiles]
    health = exports["health"]
    persons, first = np.unique(health.pid, return_index=True)     # a conflict is on the first row
    conflict_rows = first[np.isin(persons, dob_conflicts)]
    exports, moved = _apply(exports, changes)
    shown = exports["health"].frame["出生日期"].gather(moved["health"][conflict_rows]).is_not_null().to_numpy()
    kin = [ch.people for ch in changes if ch.people is not None]
    home = np.concatenate([P.home] + [K.home for K in kin])
    rid = pl.concat([P.rid] + [K.rid for K in kin])
    touched = {name: (len(ch.touched), ch.eligible) for name, ch in zip(profiles, changes)}
    return exports, home, rid, health.pid[conflict_rows[shown]], touched


def generate_sample(people: int, seed: int, out_dir: Path, as_of: datetime | None = None,
                    corruptions=()) -> SampleSummary:
    """Write the four agencies' synthetic exports and the truth files into out_dir.

    Same (people, seed, as_of, corruptions) -> byte-identical files. as_of defaults to
    DEFAULT_AS_OF (never "now"): only events at or before it exist, so some travelers are
    mid-chain. corruptions: names of CORRUPTIONS profiles (or "all", or comma-separated lists);
    without any the files are exactly those of the generator alone."""
    as_of = DEFAULT_AS_OF if as_of is None else as_of
    _validate(people, seed, as_of)
    profiles = corruption_names(corruptions)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output path exists and is not a directory: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)   # an unwritable place fails (OSError) before the work
    as_of_s = int((as_of - datetime(1970, 1, 1)).total_seconds())
    V = _build_vocab()
    P = _population(people, seed, as_of_s, V)
    TL = _timeline(P, seed, as_of_s)
    health, dob_conflicts = _health(P, TL, V, seed, as_of_s)
    police, id_conflicts = _police(P, TL, V, seed, as_of_s)
    exports = {"immigration": _immigration(P, TL, V, seed), "health": health, "police": police,
               "commerce": _commerce(P, V, seed, as_of_s)}
    home, rid, touched = P.home, P.rid, {}
    if profiles:
        exports, home, rid, dob_conflicts, touched = _corrupt(profiles, P, V, exports, seed, as_of_s, dob_conflicts)
    identity = np.union1d(_observable_dob(exports, dob_conflicts),
                          _observable(rid, [exports["health"], exports["police"]], id_conflicts))
    truth = {"truth_entities.csv": _truth_entities(exports),
             "truth_flags.csv": _truth_flags(home, exports, identity, as_of_s)}
    files = _write_all(out_dir, exports, truth, as_of)
    return SampleSummary(out_dir=out_dir, people=people, files=files, as_of=as_of, corruptions=touched)
