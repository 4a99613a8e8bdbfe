"""Invented name, place and code tables for the held-out generator (no real people).

Latin name entries are written "CANON/VARIANT/VARIANT=Native": CANON is the ASCII passport (MRZ)
spelling, the variants are other common transliterations, Native (optional) is the spelling with
the diacritics of the traveler's own language. A hyphen inside CANON (MIN-JUN, JEAN-PIERRE) marks
a given name whose parts are written joined, spaced or hyphenated depending on who typed it.
"""

# --- Chinese (mainland) -------------------------------------------------------------------------
# (hanzi, pinyin, relative frequency)
CN_SURNAMES = [
    ("王", "wang", 71), ("李", "li", 70), ("张", "zhang", 67), ("刘", "liu", 54), ("陈", "chen", 45),
    ("杨", "yang", 31), ("黄", "huang", 22), ("赵", "zhao", 20), ("吴", "wu", 20), ("周", "zhou", 19),
    ("徐", "xu", 16), ("孙", "sun", 15), ("马", "ma", 14), ("朱", "zhu", 13), ("胡", "hu", 13),
    ("郭", "guo", 12), ("何", "he", 12), ("林", "lin", 11), ("高", "gao", 11), ("罗", "luo", 10),
    ("郑", "zheng", 9), ("梁", "liang", 9), ("谢", "xie", 8), ("宋", "song", 8), ("唐", "tang", 8),
    ("许", "xu", 7), ("韩", "han", 7), ("冯", "feng", 7), ("邓", "deng", 7), ("曹", "cao", 7),
    ("彭", "peng", 6), ("曾", "zeng", 6), ("肖", "xiao", 6), ("田", "tian", 6), ("董", "dong", 6),
    ("袁", "yuan", 5), ("潘", "pan", 5), ("于", "yu", 5), ("蒋", "jiang", 5), ("蔡", "cai", 5),
    ("余", "yu", 5), ("杜", "du", 5), ("叶", "ye", 5), ("程", "cheng", 5), ("苏", "su", 4),
    ("魏", "wei", 4), ("吕", "lyu", 4), ("丁", "ding", 4), ("任", "ren", 4), ("沈", "shen", 4),
    ("姚", "yao", 4), ("卢", "lu", 4), ("姜", "jiang", 4), ("崔", "cui", 4), ("钟", "zhong", 4),
    ("谭", "tan", 3), ("陆", "lu", 3), ("汪", "wang", 3), ("范", "fan", 3), ("金", "jin", 3),
    ("石", "shi", 3), ("廖", "liao", 3), ("贾", "jia", 3), ("夏", "xia", 3), ("韦", "wei", 3),
    ("付", "fu", 3), ("方", "fang", 3), ("白", "bai", 3), ("邹", "zou", 3), ("孟", "meng", 3),
    ("熊", "xiong", 2), ("秦", "qin", 2), ("邱", "qiu", 2), ("江", "jiang", 2), ("尹", "yin", 2),
    ("薛", "xue", 2), ("闫", "yan", 2), ("段", "duan", 2), ("雷", "lei", 2), ("侯", "hou", 2),
    ("龙", "long", 2), ("史", "shi", 2), ("陶", "tao", 2), ("黎", "li", 2), ("贺", "he", 2),
    ("顾", "gu", 2), ("毛", "mao", 2), ("郝", "hao", 2), ("龚", "gong", 2), ("邵", "shao", 2),
    ("万", "wan", 2), ("钱", "qian", 2), ("严", "yan", 2), ("武", "wu", 2), ("戴", "dai", 2),
    ("欧阳", "ouyang", 1), ("司马", "sima", 1), ("诸葛", "zhuge", 1), ("上官", "shangguan", 1),
]
# spellings of 吕 seen in hand-typed records (the passport writes LYU)
LYU_VARIANTS = ["lv", "lu", "lü", "lyu"]

# very common full given names (hanzi, syllables, sex M/F/U, weight): these make namesakes
CN_COMMON_GIVEN = [
    ("伟", ["wei"], "M", 30), ("芳", ["fang"], "F", 25), ("娜", ["na"], "F", 22), ("敏", ["min"], "F", 20),
    ("静", ["jing"], "F", 20), ("秀英", ["xiu", "ying"], "F", 15), ("丽", ["li"], "F", 15),
    ("强", ["qiang"], "M", 15), ("磊", ["lei"], "M", 14), ("军", ["jun"], "M", 13), ("洋", ["yang"], "M", 12),
    ("勇", ["yong"], "M", 12), ("艳", ["yan"], "F", 12), ("杰", ["jie"], "M", 12), ("娟", ["juan"], "F", 11),
    ("涛", ["tao"], "M", 11), ("明", ["ming"], "M", 10), ("超", ["chao"], "M", 10), ("秀兰", ["xiu", "lan"], "F", 9),
    ("霞", ["xia"], "F", 9), ("平", ["ping"], "U", 8), ("刚", ["gang"], "M", 8), ("桂英", ["gui", "ying"], "F", 7),
    ("建华", ["jian", "hua"], "M", 6), ("建国", ["jian", "guo"], "M", 6), ("海燕", ["hai", "yan"], "F", 6),
    ("志强", ["zhi", "qiang"], "M", 6), ("晓明", ["xiao", "ming"], "M", 6), ("婷婷", ["ting", "ting"], "F", 5),
    ("子涵", ["zi", "han"], "U", 5), ("浩然", ["hao", "ran"], "M", 5), ("欣怡", ["xin", "yi"], "F", 5),
    ("宇轩", ["yu", "xuan"], "M", 5), ("一诺", ["yi", "nuo"], "U", 4), ("丹", ["dan"], "F", 6),
]
CN_CHARS_M = [
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("杰", "jie"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("辉", "hui"), ("鹏", "peng"), ("飞", "fei"),
    ("浩", "hao"), ("宇", "yu"), ("俊", "jun"), ("博", "bo"), ("斌", "bin"), ("峰", "feng"), ("亮", "liang"),
    ("健", "jian"), ("波", "bo"), ("东", "dong"), ("建", "jian"), ("国", "guo"), ("海", "hai"), ("志", "zhi"),
    ("文", "wen"), ("天", "tian"), ("泽", "ze"), ("睿", "rui"), ("铭", "ming"), ("凯", "kai"), ("永", "yong"),
    ("德", "de"), ("成", "cheng"), ("晨", "chen"), ("阳", "yang"), ("昊", "hao"), ("轩", "xuan"), ("子", "zi"),
    ("嘉", "jia"), ("家", "jia"), ("思", "si"), ("一", "yi"), ("安", "an"), ("乐", "le"), ("华", "hua"),
    ("平", "ping"), ("林", "lin"), ("宁", "ning"), ("晓", "xiao"), ("立", "li"), ("新", "xin"), ("春", "chun"),
]
CN_CHARS_F = [
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"), ("娟", "juan"),
    ("秀", "xiu"), ("霞", "xia"), ("英", "ying"), ("华", "hua"), ("玲", "ling"), ("红", "hong"), ("梅", "mei"),
    ("兰", "lan"), ("凤", "feng"), ("云", "yun"), ("玉", "yu"), ("珍", "zhen"), ("婷", "ting"), ("雪", "xue"),
    ("琳", "lin"), ("雨", "yu"), ("涵", "han"), ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("嘉", "jia"),
    ("思", "si"), ("晓", "xiao"), ("小", "xiao"), ("雯", "wen"), ("颖", "ying"), ("慧", "hui"), ("倩", "qian"),
    ("蕾", "lei"), ("瑶", "yao"), ("琪", "qi"), ("萱", "xuan"), ("诗", "shi"), ("悦", "yue"), ("彤", "tong"),
    ("晨", "chen"), ("子", "zi"), ("梓", "zi"), ("一", "yi"), ("安", "an"), ("宁", "ning"), ("春", "chun"),
    ("燕", "yan"), ("丹", "dan"), ("洁", "jie"), ("月", "yue"), ("莉", "li"),
]
# characters a clerk's pinyin input method easily swaps for the intended one (same reading)
HOMOPHONES = {
    "伟": "玮炜苇", "静": "婧靖", "丽": "莉俪", "杰": "洁捷", "涛": "韬滔", "明": "铭鸣", "华": "桦骅",
    "琳": "林霖", "峰": "锋丰", "婷": "亭庭", "欣": "鑫昕", "怡": "仪宜", "佳": "嘉家", "嘉": "佳家",
    "俊": "峻骏", "红": "虹宏", "玲": "铃龄", "辉": "晖徽", "军": "君钧", "晓": "小筱", "小": "晓",
    "宇": "雨羽禹", "浩": "昊皓", "昊": "浩皓", "梓": "子紫", "子": "梓紫", "雯": "文闻", "文": "雯闻",
    "颖": "莹影", "慧": "惠蕙", "瑶": "遥", "琪": "棋祺琦", "萱": "轩宣", "轩": "萱宣", "彤": "桐童",
    "睿": "瑞锐", "凯": "恺铠", "敏": "民闽", "强": "蔷", "勇": "永涌", "永": "勇", "艳": "燕彦",
    "燕": "艳彦", "娟": "鹃涓", "超": "潮朝", "刚": "钢", "鹏": "朋", "飞": "菲非", "斌": "彬滨",
    "健": "建剑", "建": "健剑", "波": "博", "博": "波柏", "东": "冬栋", "志": "智治", "天": "添",
    "泽": "择", "铭": "明鸣", "成": "诚城", "晨": "辰宸", "阳": "洋扬", "洋": "阳扬", "思": "斯丝",
    "平": "萍苹", "林": "琳霖", "宁": "凝", "霞": "侠", "英": "莹瑛", "梅": "玫", "兰": "岚澜",
    "云": "芸昀", "玉": "钰煜", "珍": "真贞", "雨": "宇语", "涵": "含晗", "倩": "茜", "诗": "师施",
    "悦": "月越", "春": "纯", "德": "得", "家": "佳嘉", "丹": "单", "洁": "杰", "莉": "丽", "立": "力丽",
    "新": "欣鑫", "月": "悦", "芳": "方", "娜": "纳",
}

# --- Hong Kong / Macao (Cantonese romanization) ---------------------------------------------------
# (traditional, simplified, official romanization, pinyin of the mainland reading)
HK_SURNAMES = [
    ("陳", "陈", "CHAN", "chen", 10), ("李", "李", "LEE", "li", 8), ("張", "张", "CHEUNG", "zhang", 7),
    ("黃", "黄", "WONG", "huang", 9), ("王", "王", "WONG", "wang", 3), ("林", "林", "LAM", "lin", 5),
    ("劉", "刘", "LAU", "liu", 5), ("吳", "吴", "NG", "wu", 4), ("梁", "梁", "LEUNG", "liang", 5),
    ("何", "何", "HO", "he", 4), ("鄭", "郑", "CHENG", "zheng", 3), ("周", "周", "CHOW", "zhou", 3),
    ("謝", "谢", "TSE", "xie", 2), ("鄧", "邓", "TANG", "deng", 2), ("馮", "冯", "FUNG", "feng", 2),
    ("曾", "曾", "TSANG", "zeng", 2), ("羅", "罗", "LAW", "luo", 2), ("朱", "朱", "CHU", "zhu", 2),
    ("郭", "郭", "KWOK", "guo", 2), ("葉", "叶", "YIP", "ye", 2), ("蔡", "蔡", "CHOI", "cai", 2),
    ("麥", "麦", "MAK", "mai", 2), ("區", "区", "AU", "ou", 1), ("盧", "卢", "LO", "lu", 2),
    ("徐", "徐", "TSUI", "xu", 1), ("楊", "杨", "YEUNG", "yang", 2), ("蘇", "苏", "SO", "su", 1),
    ("歐陽", "欧阳", "AU YEUNG", "ouyang", 1),
]
# (traditional, simplified, romanization syllables, pinyin syllables, sex)
HK_GIVEN = [
    ("大文", "大文", ["TAI", "MAN"], ["da", "wen"], "M"), ("志明", "志明", ["CHI", "MING"], ["zhi", "ming"], "M"),
    ("家豪", "家豪", ["KA", "HO"], ["jia", "hao"], "M"), ("偉強", "伟强", ["WAI", "KEUNG"], ["wei", "qiang"], "M"),
    ("俊傑", "俊杰", ["CHUN", "KIT"], ["jun", "jie"], "M"), ("子健", "子健", ["TSZ", "KIN"], ["zi", "jian"], "M"),
    ("國華", "国华", ["KWOK", "WAH"], ["guo", "hua"], "M"), ("志偉", "志伟", ["CHI", "WAI"], ["zhi", "wei"], "M"),
    ("家明", "家明", ["KA", "MING"], ["jia", "ming"], "M"), ("文傑", "文杰", ["MAN", "KIT"], ["wen", "jie"], "M"),
    ("浩然", "浩然", ["HO", "YIN"], ["hao", "ran"], "M"), ("建華", "建华", ["KIN", "WAH"], ["jian", "hua"], "M"),
    ("永康", "永康", ["WING", "HONG"], ["yong", "kang"], "M"), ("錦輝", "锦辉", ["KAM", "FAI"], ["jin", "hui"], "M"),
    ("嘉欣", "嘉欣", ["KA", "YAN"], ["jia", "xin"], "F"), ("美玲", "美玲", ["MEI", "LING"], ["mei", "ling"], "F"),
    ("詠詩", "咏诗", ["WING", "SZE"], ["yong", "shi"], "F"), ("淑儀", "淑仪", ["SUK", "YEE"], ["shu", "yi"], "F"),
    ("麗華", "丽华", ["LAI", "WAH"], ["li", "hua"], "F"), ("嘉儀", "嘉仪", ["KA", "YEE"], ["jia", "yi"], "F"),
    ("思敏", "思敏", ["SZE", "MAN"], ["si", "min"], "F"), ("凱琳", "凯琳", ["HOI", "LAM"], ["kai", "lin"], "F"),
    ("慧珊", "慧珊", ["WAI", "SHAN"], ["hui", "shan"], "F"), ("美儀", "美仪", ["MEI", "YEE"], ["mei", "yi"], "F"),
    ("秀芬", "秀芬", ["SAU", "FUN"], ["xiu", "fen"], "F"), ("婉婷", "婉婷", ["YUEN", "TING"], ["wan", "ting"], "F"),
]
HK_ENGLISH_M = ["PETER", "MICHAEL", "DAVID", "KELVIN", "RAYMOND", "ERIC", "ALAN", "JASON", "TOMMY",
                "WILSON", "IVAN", "JACKY", "SAMMY", "KENNETH", "VINCENT", "HENRY"]
HK_ENGLISH_F = ["MANDY", "WINNIE", "CARMEN", "CHERRY", "IVY", "KAREN", "VIVIAN", "GRACE", "CANDY",
                "JOYCE", "FIONA", "ANGEL", "CHRISTY", "EUNICE", "PHOEBE", "RITA"]

# --- Taiwan (Wade-Giles) -----------------------------------------------------------------------
TW_SURNAMES = [
    ("陳", "陈", "CHEN", "chen", 11), ("林", "林", "LIN", "lin", 8), ("黃", "黄", "HUANG", "huang", 6),
    ("張", "张", "CHANG", "zhang", 5), ("李", "李", "LI", "li", 5), ("王", "王", "WANG", "wang", 4),
    ("吳", "吴", "WU", "wu", 4), ("劉", "刘", "LIU", "liu", 3), ("蔡", "蔡", "TSAI", "cai", 3),
    ("楊", "杨", "YANG", "yang", 3), ("許", "许", "HSU", "xu", 2), ("鄭", "郑", "CHENG", "zheng", 2),
    ("謝", "谢", "HSIEH", "xie", 2), ("郭", "郭", "KUO", "guo", 2), ("洪", "洪", "HUNG", "hong", 2),
    ("曾", "曾", "TSENG", "zeng", 2), ("邱", "邱", "CHIU", "qiu", 2), ("廖", "廖", "LIAO", "liao", 2),
    ("賴", "赖", "LAI", "lai", 2), ("周", "周", "CHOU", "zhou", 2),
]
TW_GIVEN = [
    ("志明", "志明", ["CHIH", "MING"], ["zhi", "ming"], "M"), ("建宏", "建宏", ["CHIEN", "HUNG"], ["jian", "hong"], "M"),
    ("俊傑", "俊杰", ["CHUN", "CHIEH"], ["jun", "jie"], "M"), ("宗翰", "宗翰", ["TSUNG", "HAN"], ["zong", "han"], "M"),
    ("家豪", "家豪", ["CHIA", "HAO"], ["jia", "hao"], "M"), ("冠宇", "冠宇", ["KUAN", "YU"], ["guan", "yu"], "M"),
    ("承恩", "承恩", ["CHENG", "EN"], ["cheng", "en"], "M"), ("志豪", "志豪", ["CHIH", "HAO"], ["zhi", "hao"], "M"),
    ("彥廷", "彦廷", ["YEN", "TING"], ["yan", "ting"], "M"), ("柏翰", "柏翰", ["PO", "HAN"], ["bo", "han"], "M"),
    ("淑芬", "淑芬", ["SHU", "FEN"], ["shu", "fen"], "F"), ("美玲", "美玲", ["MEI", "LING"], ["mei", "ling"], "F"),
    ("雅婷", "雅婷", ["YA", "TING"], ["ya", "ting"], "F"), ("怡君", "怡君", ["YI", "CHUN"], ["yi", "jun"], "F"),
    ("佳穎", "佳颖", ["CHIA", "YING"], ["jia", "ying"], "F"), ("詩涵", "诗涵", ["SHIH", "HAN"], ["shi", "han"], "F"),
    ("欣怡", "欣怡", ["HSIN", "YI"], ["xin", "yi"], "F"), ("雅雯", "雅雯", ["YA", "WEN"], ["ya", "wen"], "F"),
    ("筱涵", "筱涵", ["HSIAO", "HAN"], ["xiao", "han"], "F"), ("宜蓁", "宜蓁", ["YI", "CHEN"], ["yi", "zhen"], "F"),
]

# --- Foreign names by nationality -------------------------------------------------------------
_ANGLO = dict(
    fam="SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS WILSON ANDERSON TAYLOR THOMAS MOORE "
        "JACKSON MARTIN THOMPSON/THOMSON WHITE HARRIS CLARK/CLARKE LEWIS ROBINSON WALKER YOUNG ALLEN KING "
        "WRIGHT SCOTT EVANS ROBERTS HUGHES EDWARDS DAVIES MORGAN COOK/COOKE WOOD OBRIEN/O'BRIEN "
        "MCDONALD/MACDONALD PHILLIPS/PHILIPS CAMPBELL STEWART/STUART MURPHY BAKER GREEN HALL",
    M="JOHN/JON MICHAEL DAVID JAMES ROBERT WILLIAM RICHARD JOSEPH CHRISTOPHER/KRISTOPHER MATTHEW/MATHEW "
      "DANIEL STEVEN/STEPHEN PHILIP/PHILLIP ALAN/ALLAN/ALLEN BRIAN/BRYAN ANDREW MARK/MARC PAUL "
      "GEOFFREY/JEFFREY SEAN/SHAWN THOMAS EDWARD",
    F="MARY JENNIFER ELIZABETH SARAH/SARA JESSICA EMILY KATHERINE/CATHERINE/KATHRYN REBECCA/REBEKAH "
      "ASHLEY AMANDA MEGAN/MEGHAN LAUREN RACHEL HANNAH OLIVIA EMMA CHARLOTTE SOPHIE/SOPHIA "
      "ELEANOR/ELINOR ANN/ANNE LOUISE GRACE",
    middle_p=0.5, given_first=True,
)
FOREIGN = {
    "KOR": dict(
        fam="KIM LEE/YI/RHEE PARK/PAK/BAK CHOI/CHOE JUNG/JEONG/CHUNG KANG CHO/JO YOON/YUN JANG/CHANG LIM/IM "
            "HAN OH SEO/SUH SHIN/SIN KWON HWANG AHN/AN SONG YOO/YU HONG",
        M="MIN-JUN JI-HOON SUNG-HO YOUNG-SOO/YEONG-SU DONG-HYUN JAE-WON HYUN-WOO SEUNG-MIN JUN-HO TAE-YANG "
          "SANG-WOO JIN-HO",
        F="SEO-YEON HYE-JIN JI-WOO EUN-JI SOO-BIN/SU-BIN MIN-JI YE-JIN HA-EUN JI-YOUNG/JI-YEONG SO-YEON "
          "YOUNG-HEE MI-KYUNG",
        middle_p=0.0, given_first=False),
    "JPN": dict(
        fam="SATO/SATOU/SATOH SUZUKI TAKAHASHI TANAKA WATANABE ITO/ITOU/ITOH YAMAMOTO NAKAMURA KOBAYASHI "
            "KATO/KATOU/KATOH YOSHIDA YAMADA SASAKI YAMAGUCHI MATSUMOTO INOUE KIMURA HAYASHI SHIMIZU "
            "SAITO/SAITOU/SAITOH ONO/OHNO GOTO/GOTOU/GOTOH",
        M="HIROSHI TAKESHI KENJI YUTA/YUUTA SHOTA/SHOUTA DAISUKE RYO/RYOU KOJI/KOUJI TAKUYA KAZUKI HARUTO "
          "SOTA/SOUTA YUSUKE/YUUSUKE",
        F="YUKI HARUKA AYAKA YUKO/YUUKO KAORI MISAKI YOKO/YOUKO NANAMI SAKURA MAI EMI AOI YUI",
        middle_p=0.0, given_first=True),
    "DEU": dict(
        fam="MUELLER/MULLER=Müller SCHMIDT/SCHMITT SCHNEIDER FISCHER/FISHER WEBER MEYER/MEIER/MAIER WAGNER "
            "BECKER SCHULZ/SCHULTZ HOFFMANN/HOFMANN KOCH RICHTER KLEIN WOLF/WOLFF SCHROEDER/SCHRODER=Schröder "
            "NEUMANN SCHWARZ ZIMMERMANN BRAUN KRUEGER/KRUGER=Krüger HARTMANN LANGE WERNER KRAUSE "
            "BAUER WALTER",
        M="STEFAN/STEPHAN MICHAEL THOMAS ANDREAS MARKUS/MARCUS JUERGEN/JURGEN=Jürgen KLAUS/CLAUS LUKAS/LUCAS "
          "FELIX JONAS TOBIAS FLORIAN MATTHIAS/MATHIAS SEBASTIAN HANS-PETER WOLFGANG",
        F="ANNA JULIA KATHARINA/KATARINA SABINE LENA SOPHIE/SOFIE LAURA MARIE HANNAH/HANNA "
          "CHRISTINA/KRISTINA PETRA ANNA-LENA MONIKA BIRGIT",
        middle_p=0.3, given_first=True),
    "FRA": dict(
        fam="MARTIN BERNARD DUBOIS THOMAS ROBERT RICHARD PETIT DURAND LEROY MOREAU SIMON LAURENT "
            "LEFEBVRE/LEFEVRE MICHEL DAVID BERTRAND ROUX VINCENT FOURNIER GIRARD BONNET DUPONT LAMBERT "
            "FONTAINE ROUSSEAU",
        M="JEAN-PIERRE PHILIPPE/PHILIPE NICOLAS FRANCOIS=François ANTOINE JULIEN MATHIEU/MATTHIEU PIERRE LOUIS "
          "THEO=Théo HUGO JEAN-LUC GUILLAUME SEBASTIEN=Sébastien",
        F="MARIE CELINE=Céline ISABELLE CAMILLE LEA=Léa CHLOE=Chloé MANON SOPHIE NATHALIE AMELIE=Amélie "
          "MARIE-CLAIRE HELENE=Hélène ELODIE=Élodie",
        middle_p=0.35, given_first=True),
    "RUS": dict(
        fam="IVANOV SMIRNOV KUZNETSOV POPOV VASILEV/VASILIEV/VASILYEV PETROV SOKOLOV MIKHAILOV/MIKHAYLOV "
            "NOVIKOV FEDOROV/FYODOROV MOROZOV VOLKOV ALEKSEEV/ALEXEEV LEBEDEV SEMENOV/SEMYONOV "
            "EGOROV/YEGOROV PAVLOV KOZLOV STEPANOV NIKOLAEV/NIKOLAYEV",
        M="ALEKSANDR/ALEXANDER/ALEKSANDER SERGEI/SERGEY DMITRII/DMITRY/DMITRIY ANDREI/ANDREY "
          "ALEKSEI/ALEXEY/ALEKSEY MIKHAIL IVAN NIKOLAI/NIKOLAY IURII/YURI/YURIY MAKSIM/MAXIM ARTEM/ARTYOM "
          "EVGENII/EVGENY/YEVGENY VLADIMIR PAVEL ROMAN",
        F="EKATERINA/YEKATERINA NATALIA/NATALYA OLGA TATIANA/TATYANA ANNA ELENA/YELENA IULIIA/YULIA/JULIA "
          "MARIIA/MARIA ANASTASIIA/ANASTASIA IRINA SVETLANA DARIA/DARYA KSENIIA/KSENIA",
        middle_p=0.0, given_first=True, patronymic=True, fem_suffix="A"),
    "IND": dict(
        fam="KUMAR SHARMA SINGH PATEL GUPTA REDDY RAO NAIR IYER JOSHI MEHTA DAS CHOPRA VERMA "
            "AGARWAL/AGGARWAL BANERJEE/BANERJI MUKHERJEE/MUKHERJI PILLAI MENON CHAUDHARY/CHOUDHARY",
        M="RAHUL AMIT VIKRAM SURESH RAJESH DEEPAK ARJUN SANJAY ANIL RAVI VIJAY KARTHIK/KARTIK PRAKASH MANOJ "
          "ABHISHEK",
        F="PRIYA ANJALI SUNITA POOJA/PUJA DIVYA NEHA KAVITA LAKSHMI/LAXMI SNEHA ANITA SHREYA/SHRIYA "
          "AISHWARYA",
        middle_p=0.3, middle_M="KUMAR PRASAD LAL", middle_F="DEVI KUMARI", given_first=True),
    "PAK": dict(
        fam="KHAN AHMED/AHMAD ALI HUSSAIN/HUSAIN/HUSSEIN MALIK SHAH CHAUDHRY/CHAUDHARY/CHOUDHRY "
            "QURESHI/QURAISHI RAZA IQBAL BUTT SHEIKH/SHAIKH AKHTAR MIRZA JAVED/JAVAID",
        M="MUHAMMAD/MOHAMMAD/MOHAMMED/MOHAMED AHMED/AHMAD USMAN/OSMAN BILAL HAMZA IMRAN ASIF FAISAL/FAYSAL "
          "TARIQ/TAREQ OMAR/UMAR ZAIN YUSUF/YOUSAF",
        F="FATIMA/FATEMA AYESHA/AISHA SANA MARYAM/MARIAM ZAINAB/ZEINAB HINA SADIA AMNA/AMINA",
        middle_p=0.5, given_first=True),
    "ARB": dict(  # Saudi Arabia, United Arab Emirates, Egypt
        fam="AL-HARBI/AL HARBI/ALHARBI AL-OTAIBI/AL OTAIBI/ALOTAIBI AL-QAHTANI/AL QAHTANI/ALQAHTANI "
            "AL-GHAMDI/AL GHAMDI/ALGHAMDI AL-ZAHRANI/AL ZAHRANI/ALZAHRANI AL-MANSOURI/AL MANSOORI/ALMANSOURI "
            "AL-HASHIMI/AL HASHEMI/ALHASHIMI HASSAN/HASAN IBRAHIM/EBRAHIM ABDULLAH/ABDALLAH SALEH/SALIH "
            "MAHMOUD/MAHMUD MOSTAFA/MUSTAFA ABDELRAHMAN/ABDEL RAHMAN/ABDUL RAHMAN ELSAYED/EL-SAYED/EL SAYED",
        M="MOHAMMED/MUHAMMAD/MOHAMED/MOHAMMAD AHMED/AHMAD YUSUF/YOUSEF/YOUSSEF/YOUSIF OMAR/UMAR "
          "ABDULLAH/ABDALLAH KHALID/KHALED HASSAN/HASAN HUSSEIN/HUSSAIN/HUSAIN IBRAHIM/EBRAHIM MUSTAFA/MOSTAFA "
          "ALI SAEED/SAID FAHAD/FAHD SULTAN TAREK/TARIQ",
        F="FATIMA/FATMA AISHA/AYESHA MARIAM/MARYAM ZAINAB/ZEINAB NOUR/NOOR LAYLA/LEILA SARA/SARAH HUDA/HODA "
          "REEM/RIM AMAL",
        middle_p=0.6, middle_from_male=True, given_first=True),
    "BRA": dict(
        fam="SILVA SANTOS OLIVEIRA SOUZA/SOUSA RODRIGUES FERREIRA ALVES PEREIRA LIMA GOMES COSTA RIBEIRO "
            "MARTINS CARVALHO ALMEIDA LOPES SOARES FERNANDES VIEIRA BARBOSA",
        M="LUIZ/LUIS JOAO=João JOSE=José LUCAS GABRIEL RAFAEL PEDRO MARCOS/MARCUS THIAGO/TIAGO "
          "MATHEUS/MATEUS GUSTAVO FELIPE/FILIPE BRUNO RODRIGO ANTONIO=Antônio",
        F="ANA MARIA FERNANDA JULIANA BEATRIZ LETICIA=Letícia CAMILA LARISSA AMANDA BRUNA GABRIELA "
          "PATRICIA=Patrícia",
        middle_p=0.6, second_surname_p=0.5, given_first=True),
    "NGA": dict(
        fam="OKAFOR ADEYEMI OKONKWO ADEBAYO EZE NWOSU IBRAHIM MUSA BELLO OGUNDIPE CHUKWU OBI ABUBAKAR "
            "ADEWALE NWANKWO OKEKE ADELEKE OLAWALE UCHE BALOGUN",
        M="CHINEDU EMEKA IFEANYI BABAJIDE TUNDE GODWIN OLUWASEUN/OLUSEUN CHUKWUEMEKA SAMUEL IBRAHIM "
          "DANIEL EMMANUEL KELECHI SEGUN",
        F="NGOZI CHIAMAKA FUNMILAYO AMAKA BLESSING ADAEZE FOLASADE CHIOMA AISHA GRACE NKECHI YETUNDE ESTHER",
        middle_p=0.5, given_first=True),
    "VNM": dict(
        fam="NGUYEN=Nguyễn TRAN=Trần LE=Lê PHAM=Phạm HOANG=Hoàng HUYNH=Huỳnh PHAN VU=Vũ VO=Võ DANG=Đặng "
            "BUI=Bùi DO=Đỗ HO=Hồ NGO=Ngô DUONG=Dương LY=Lý",
        M="ANH TUAN=Tuấn HUNG=Hùng DUNG=Dũng HUY THANH NAM LONG HIEU=Hiếu PHONG QUAN=Quân KHOA",
        F="HUONG=Hương LAN MAI HA=Hà LINH TRANG THAO=Thảo NGA HANH=Hạnh NHUNG THUY=Thủy VY",
        middle_p=0.9, middle_M="VAN=Văn DUC=Đức MINH QUANG HUU=Hữu", middle_F="THI=Thị NGOC=Ngọc THU KIM",
        given_first=False, middle_before_given=True),
    "ESP": dict(
        fam="GARCIA=García FERNANDEZ=Fernández GONZALEZ=González RODRIGUEZ=Rodríguez LOPEZ=López "
            "MARTINEZ=Martínez SANCHEZ=Sánchez PEREZ=Pérez GOMEZ=Gómez MARTIN=Martín JIMENEZ=Jiménez RUIZ "
            "HERNANDEZ=Hernández DIAZ=Díaz MORENO ALVAREZ=Álvarez MUNOZ=Muñoz ROMERO",
        M="JOSE=José JAVIER/XAVIER ALEJANDRO CARLOS PABLO SERGIO DAVID JUAN MANUEL FRANCISCO ANTONIO JORGE",
        F="MARIA=María LAURA LUCIA=Lucía ELENA SOFIA=Sofía CARMEN PAULA MARTA ANA CRISTINA ISABEL RAQUEL",
        middle_p=0.4, second_surname_p=1.0, given_first=True),
    "ITA": dict(
        fam="ROSSI RUSSO FERRARI ESPOSITO BIANCHI ROMANO COLOMBO RICCI MARINO GRECO BRUNO GALLO CONTI "
            "DELUCA/DE LUCA COSTA GIORDANO MANCINI RIZZO LOMBARDI MORETTI",
        M="MARCO GIUSEPPE FRANCESCO ALESSANDRO LUCA MATTEO ANDREA LORENZO DAVIDE SIMONE NICOLO=Nicolò GIOVANNI",
        F="GIULIA FRANCESCA CHIARA SARA ALESSIA FEDERICA MARTINA ELENA VALENTINA SILVIA ELISA GIORGIA",
        middle_p=0.15, given_first=True),
    "POL": dict(
        fam="NOWAK KOWALSKI WISNIEWSKI=Wiśniewski WOJCIK=Wójcik KOWALCZYK KAMINSKI=Kamiński LEWANDOWSKI "
            "ZIELINSKI=Zieliński SZYMANSKI=Szymański WOZNIAK=Woźniak DABROWSKI=Dąbrowski KOZLOWSKI=Kozłowski "
            "MAZUR KRAWCZYK KACZMAREK",
        M="PIOTR KRZYSZTOF TOMASZ PAWEL=Paweł MICHAL=Michał MAREK JAKUB ADAM LUKASZ=Łukasz MATEUSZ KAMIL "
          "GRZEGORZ",
        F="ANNA KATARZYNA MALGORZATA=Małgorzata AGNIESZKA MARTA EWA JOANNA MAGDALENA ZOFIA ALEKSANDRA "
          "MONIKA NATALIA",
        middle_p=0.1, given_first=True, polish_fem=True),
    "TUR": dict(
        fam="YILMAZ=Yılmaz KAYA DEMIR SAHIN=Şahin CELIK=Çelik YILDIZ=Yıldız YILDIRIM=Yıldırım OZTURK=Öztürk "
            "AYDIN OZDEMIR=Özdemir ARSLAN DOGAN=Doğan KILIC=Kılıç ASLAN CETIN=Çetin",
        M="MEHMET/MEHMED MUSTAFA AHMET/AHMED ALI HUSEYIN=Hüseyin HASAN/HASSAN IBRAHIM MURAT EMRE YUSUF "
          "OMER=Ömer BURAK CAN",
        F="AYSE=Ayşe FATMA EMINE ZEYNEP ELIF HATICE MERVE ESRA OZLEM=Özlem BUSE SEDA",
        middle_p=0.15, given_first=True),
    "THA": dict(
        fam="SAETANG/SAE-TANG SRISAWAT WONGSAWAT CHAIYAPORN BOONMA THONGDEE SUKSAWAT RATTANAKORN PHROMMA "
            "JANTHAWONG",
        M="SOMCHAI SOMSAK PRASERT ANUCHA THANAKORN KITTIPONG WICHAI NATTAPONG",
        F="SIRIPORN KANYA NATTAYA/NATTHAYA PORNTHIP WANIDA SUDARAT RATANA PIMCHANOK",
        middle_p=0.0, given_first=True),
    "ANG": _ANGLO,
}
RUS_PATRONYMIC = ["SERGEEV", "IVANOV", "PETROV", "ALEKSANDROV", "VLADIMIROV", "NIKOLAEV", "ANDREEV",
                  "DMITRIEV", "MIKHAILOV", "VIKTOROV"]

# nationality (ISO alpha-3) -> name table, weight among foreigners
FOREIGN_NATS = [
    ("KOR", "KOR", 9), ("JPN", "JPN", 8), ("USA", "ANG", 10), ("GBR", "ANG", 5), ("CAN", "ANG", 2),
    ("AUS", "ANG", 2), ("DEU", "DEU", 8), ("FRA", "FRA", 5), ("RUS", "RUS", 8), ("IND", "IND", 6),
    ("PAK", "PAK", 5), ("SAU", "ARB", 3), ("ARE", "ARB", 2), ("EGY", "ARB", 3), ("BRA", "BRA", 4),
    ("NGA", "NGA", 4), ("VNM", "VNM", 6), ("ESP", "ESP", 3), ("ITA", "ITA", 3), ("POL", "POL", 2),
    ("TUR", "TUR", 3), ("THA", "THA", 3),
]

# ISO3 -> (ISO2, English spellings, Chinese names, own-language names, ICAO code if not ISO3)
COUNTRIES = {
    "CHN": ("CN", ["China", "PRC", "P.R.China", "People's Republic of China", "CHINA"], ["中国", "中华人民共和国"], ["中国"], None),
    "HKG": ("HK", ["Hong Kong", "Hong Kong SAR", "HONG KONG"], ["中国香港", "香港"], ["香港"], None),
    "MAC": ("MO", ["Macao", "Macau", "Macao SAR"], ["中国澳门", "澳门"], ["澳門"], None),
    "TWN": ("TW", ["Taiwan", "Taiwan, China"], ["中国台湾", "台湾"], ["台灣"], None),
    "KOR": ("KR", ["Korea", "South Korea", "Republic of Korea", "KOREA, REPUBLIC OF"], ["韩国"], ["대한민국", "한국"], None),
    "JPN": ("JP", ["Japan", "JAPAN"], ["日本"], ["日本"], None),
    "USA": ("US", ["USA", "United States", "United States of America", "U.S.A.", "America"], ["美国"], ["United States"], None),
    "GBR": ("GB", ["UK", "United Kingdom", "Great Britain", "Britain"], ["英国"], ["United Kingdom"], None),
    "CAN": ("CA", ["Canada"], ["加拿大"], ["Canada"], None),
    "AUS": ("AU", ["Australia"], ["澳大利亚", "澳洲"], ["Australia"], None),
    "DEU": ("DE", ["Germany", "GERMANY", "Federal Republic of Germany"], ["德国"], ["Deutschland"], "D"),
    "FRA": ("FR", ["France"], ["法国"], ["France"], None),
    "RUS": ("RU", ["Russia", "Russian Federation"], ["俄罗斯"], ["Россия"], None),
    "IND": ("IN", ["India"], ["印度"], ["Bharat", "India"], None),
    "PAK": ("PK", ["Pakistan"], ["巴基斯坦"], ["Pakistan"], None),
    "SAU": ("SA", ["Saudi Arabia", "KSA", "Kingdom of Saudi Arabia"], ["沙特阿拉伯", "沙特"], ["السعودية"], None),
    "ARE": ("AE", ["UAE", "United Arab Emirates"], ["阿联酋", "阿拉伯联合酋长国"], ["الإمارات"], None),
    "EGY": ("EG", ["Egypt"], ["埃及"], ["مصر"], None),
    "BRA": ("BR", ["Brazil"], ["巴西"], ["Brasil"], None),
    "NGA": ("NG", ["Nigeria"], ["尼日利亚"], ["Nigeria"], None),
    "VNM": ("VN", ["Vietnam", "Viet Nam"], ["越南"], ["Việt Nam"], None),
    "ESP": ("ES", ["Spain"], ["西班牙"], ["España"], None),
    "ITA": ("IT", ["Italy"], ["意大利"], ["Italia"], None),
    "POL": ("PL", ["Poland"], ["波兰"], ["Polska"], None),
    "TUR": ("TR", ["Turkey", "Türkiye"], ["土耳其"], ["Türkiye"], None),
    "THA": ("TH", ["Thailand"], ["泰国"], ["ประเทศไทย"], None),
}

# country calling codes and mobile number shapes: (cc, prefixes, digits after prefix, trunk)
PHONE_PLANS = {
    "HKG": ("852", ["5", "6", "9"], 7, ""), "MAC": ("853", ["6"], 7, ""), "TWN": ("886", ["9"], 8, "0"),
    "KOR": ("82", ["10"], 8, "0"), "JPN": ("81", ["90", "80", "70"], 8, "0"),
    "USA": ("1", ["212", "310", "415", "617", "312", "206", "713", "305", "404", "202", "646", "213", "512"], 7, "1"),
    "CAN": ("1", ["416", "604", "514", "403", "613"], 7, "1"), "GBR": ("44", ["74", "75", "77", "78", "79"], 8, "0"),
    "AUS": ("61", ["4"], 8, "0"), "DEU": ("49", ["151", "160", "170", "171", "172", "176"], 7, "0"),
    "FRA": ("33", ["6", "7"], 8, "0"), "RUS": ("7", ["9"], 9, "8"), "IND": ("91", ["98", "99", "97", "70", "80"], 8, "0"),
    "PAK": ("92", ["30", "31", "32", "33"], 8, "0"), "SAU": ("966", ["50", "53", "55", "56"], 7, "0"),
    "ARE": ("971", ["50", "52", "55", "56"], 7, "0"), "EGY": ("20", ["10", "11", "12"], 8, "0"),
    "BRA": ("55", ["119", "219", "319", "419", "619"], 8, "0"), "NGA": ("234", ["803", "806", "813", "703", "905"], 7, "0"),
    "VNM": ("84", ["90", "91", "93", "98", "97"], 7, "0"), "ESP": ("34", ["6"], 8, ""),
    "ITA": ("39", ["32", "33", "34", "39"], 8, ""), "POL": ("48", ["50", "51", "60", "66", "69", "72", "79"], 7, ""),
    "TUR": ("90", ["53", "54", "55"], 8, "0"), "THA": ("66", ["8", "9"], 8, "0"),
}
CN_MOBILE_PREFIXES = ["130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147", "150",
                      "151", "152", "153", "155", "156", "157", "158", "159", "166", "176", "177", "178",
                      "180", "181", "182", "183", "184", "185", "186", "187", "188", "189", "191", "198", "199"]

# airlines / trains by origin
FLIGHT_POOLS = {
    "KOR": ["KE831", "KE835", "OZ341", "OZ345", "CA138", "MU5044"],
    "JPN": ["NH935", "NH947", "JL881", "JL885", "CA926", "MU518"],
    "ANG": ["UA857", "AA127", "BA169", "AC031", "QF129", "CA982", "MU588", "CX5841"],
    "DEU": ["LH728", "LH790", "CA932", "MU220"], "FRA": ["AF116", "AF198", "CA934"],
    "RUS": ["SU204", "SU208", "S7567", "CA910"], "IND": ["AI348", "6E1703", "MU564"],
    "PAK": ["PK852", "PK856", "CZ6008"], "ARB": ["EK308", "EY888", "QR870", "SV884", "MS955"],
    "BRA": ["EK262", "QR874", "ET684"], "NGA": ["ET688", "ET640", "EK306"], "VNM": ["VN512", "VJ3918", "CZ3076"],
    "ESP": ["IB6851", "CA908", "QR876"], "ITA": ["AZ790", "CA940", "LH722"], "POL": ["LO093", "CA720"],
    "TUR": ["TK026", "TK088"], "THA": ["TG614", "FD548", "MU542"],
    "HKG": ["CX330", "CX348", "KA902", "HX232"], "MAC": ["NX108", "NX112"], "TWN": ["CI511", "BR716", "CI551", "CX5828"],
    "CHN": ["CA982", "MU588", "CZ328", "HU7928", "CA938", "MU5052", "CZ6016", "3U3838", "MF8672", "ZH9022"],
}
TRAINS = ["G6502", "G6508", "G6516", "G6524", "G6536", "D7012"]
FERRIES = ["TJ101", "TJ205", "TJ311"]

DISTRICTS = [  # (hanzi, English)
    ("东湖区", "Donghu District"), ("西山区", "Xishan District"), ("南江区", "Nanjiang District"),
    ("北岭区", "Beiling District"), ("滨海新区", "Binhai New Area"), ("高新区", "Gaoxin District"),
    ("江湾区", "Jiangwan District"), ("青松区", "Qingsong District"), ("临港区", "Lingang District"),
    ("金桥区", "Jinqiao District"),
]
DISTRICT_WEIGHTS = [14, 12, 11, 9, 13, 10, 9, 8, 7, 7]
STATION_NAMES = ["湖滨", "东门", "新村", "桥头", "江岸", "南苑", "北站", "滨河", "文昌", "龙泉", "金沙", "梅园",
                 "松林", "翠湖", "长安", "凤凰", "望江", "城南", "城北", "石桥", "白鹭", "青云", "和平", "兴华",
                 "光明", "育才", "民主", "朝阳", "红旗", "新华"]
ROADS = [("望湖路", "Wanghu Road"), ("新华路", "Xinhua Road"), ("解放大道", "Jiefang Avenue"),
         ("中山路", "Zhongshan Road"), ("滨江大道", "Binjiang Avenue"), ("人民路", "Renmin Road"),
         ("建设路", "Jianshe Road"), ("学院路", "Xueyuan Road"), ("春晖街", "Chunhui Street"),
         ("金桥路", "Jinqiao Road"), ("临港大道", "Lingang Avenue"), ("青松路", "Qingsong Road"),
         ("科技园路", "Kejiyuan Road"), ("长江路", "Changjiang Road"), ("枫林路", "Fenglin Road"),
         ("海韵街", "Haiyun Street"), ("东方路", "Dongfang Road"), ("世纪大道", "Century Avenue")]
HOTEL_NAMES = ["湖滨假日酒店", "望江宾馆", "金桥国际大酒店", "滨海之星酒店", "高新区人才公寓", "青松山庄",
               "江湾锦江之星", "临港海景酒店", "西山会议中心", "南江商务酒店", "北岭温泉度假村", "东湖花园酒店",
               "凤凰城市酒店", "世纪大道智选酒店", "科技园维也纳酒店", "长江饭店", "海韵精品酒店", "翠湖宾馆",
               "白鹭洲大酒店", "文昌阁酒店", "梅园宾馆", "城南如家酒店", "光明大厦酒店", "兴华国际酒店"]
EMPLOYERS = [
    ("Nordlicht Maschinenbau (Binhai) Co., Ltd.", "nordlicht-bh.com"), ("Hanbit Electronics Binhai Co., Ltd.", "hanbit-elec.co.kr"),
    ("Sakura Precision Parts (Binhai) Ltd.", "sakura-pp.co.jp"), ("Atlantic Trading Co.", "atlantic-trading.com"),
    ("Lumiere Cosmetiques Chine", "lumiere-cos.fr"), ("Volga Energy Services", "volga-es.ru"),
    ("Ganges Software Solutions", "gangessoft.in"), ("Indus Textile Trading", "industex.pk"),
    ("Gulf Petrochem Representative Office", "gulfpetro.ae"), ("Verde Agro Importacao", "verdeagro.com.br"),
    ("Lagos Star Logistics", "lagosstar.ng"), ("Mekong Garment Co.", "mekong-garment.vn"),
    ("Iberia Foods Asia", "iberiafoods.es"), ("Milano Design Studio Binhai", "milanodesign.it"),
    ("Vistula Components", "vistula-comp.pl"), ("Anadolu Ceramics China", "anadolu-cer.com.tr"),
    ("Siam Rubber Trading", "siamrubber.co.th"), ("Harbour Financial Advisory (HK) Ltd.", "harbourfa.com.hk"),
    ("Pearl River Logistics (HK) Ltd.", "prl-hk.com"), ("Formosa Semiconductor Equipment", "formosa-se.com.tw"),
    ("Binhai International School", "bis.edu.cn"), ("Global English Training Center", "get-center.cn"),
    ("滨海中德精密制造有限公司", "sgpm.cn"), ("滨海新区国际贸易有限公司", "bhitc.cn"),
]
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "qq.com", "163.com", "naver.com",
             "yahoo.co.jp", "web.de", "mail.ru", "icloud.com"]
# six-digit administrative area codes used as resident-ID prefixes
CN_AREA_CODES = ["110101", "110105", "110108", "120101", "130102", "140105", "210102", "220102", "230102",
                 "310101", "310104", "310115", "320102", "320505", "330106", "330203", "340104", "350203",
                 "360102", "370202", "410105", "420106", "430104", "440106", "440305", "450103", "500103",
                 "510104", "510107", "520102", "530102", "610113", "620102"]
