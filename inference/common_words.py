"""Common English words and first names, for the watchlist loader's warnings (inference/entities.py).

An alias that is one of these ("Target", "Shell", "Oil", "Take", "Ryan") matches ordinary text or a person,
not the company, far more often than a desk expects. COMMON_WORDS joins a general list of frequent English
words with the 1,030 words that are frequent (8 or more times) in the Twitter financial news sentiment
training set and written there in lower case at least half of the time (so they are words, not names);
FIRST_NAMES are common English first names. Both are kept here, in the package: nothing is read at run time.
"""

from __future__ import annotations

_COMMON_WORDS = """
a about above access according accounts acquire acquired acquires across act action active ad add added
adding additional address adds adj adjusted administration ads advance adviser after again against age
ago agree agreed agreement agrees ahead air airline airport al all almost alone along alphabet already
also always am amazon amid among an analyst and announced another answer any anything app apple
application appoints approval approve are area arm around art as ask asked asks at attention average
away baby back backing bad bag ball ban bank bankruptcy banks bar base based battle bay be bear bearish
beat beats beautiful beauty because become becomes bed been before began begin behind being believe bell
below best better between bid big biggest bill billion bird bit black bln block blood blue bn board boat
body bonds bone book books boost boosts bopinion born boss both bottom bounce box boy brand bread break
breakout breaks bridge bring brother brought budget build building built bull burn business businesses
busy but buy buyback buyers buys by calendar call called calls came camp campaign can cancer candidate
candidates cap capital car carbon card cards care carry cars case cases cat catch caterpillar cause cell
center central cents certain chair challenge challenges chance change changed changes character charge
charges chart charts check chicken chief child children choose church circle cities city claims class
clean clear climate climb climbs clinical close closed closes closing clothes cloud coast cold color com
come comeback comes coming common company competition complete concerns conditions conference confidence
confirmed confirms consecutive consensus considering construction consumer consumers contain continue
continued continues contract control cook cool copy corn corner corona coronavirus cost costs could
count countries country country's course cover coverage cow crash create crisis critical cross crowd
crude cry currency current cut cuts cutting dance dark data day days de dead deadly deal deals dear
death debate debt debut decade decide decision declares decline deep deeper degree delays delivery delta
demand depend desert design despite details develop di did didn't die differ dip dips direct
disappointing discovery discuss discusses distant distribution divide dividend dividends do doctor does
doesn dog doing dollar domino don don't done door double down downgraded downside downturn draw dream
dress drink drive driving drop drops drug dry due during each eagle ear early earth ease east eat
economic economy edge effect effective efforts egg eight either election elections electric element else
emergency emerging emissions employees employment en end ended ending ends enemy energy enough enter
enters entry equal equity estimate even evening event ever every ex-dividend exact example except excite
exercise expand expect expectations expected expects experience expert experts exports express extend
extends extension extra eye eyes face faces facility facing fact factory failed fair fall falling falls
family famous far farm farmers fast father favorite fear fears feed feel feet fell few field fig fight
figure files fill final finally finance financing find finds fine finger finish fire firm firms first
fish fit five flat flights floor flow flower flows fly focus follow following food foot for force
foreign forest form forward found founder four fox fraud free fresh friend from front fruit fuel full
fun funding futures gain gainers gains game gaming garden gas gasoline gather gave general genius gentle
get gets getting giant gift girl give giving glad glass go goal goes going gold gone good goods got
govern government governor grand graphite grass gray great green grew ground group grow guess guidance
guide guilty gun had hair half halo halt hand happen happy hard harmony has hat have having he he's head
headed heading hear heard heart heat heavy held help her here high higher highest highs hill him hires
hiring his historic history hit hits hold holds hole holiday home hope hopes horizon horse hot hour
hours house housing how huge human hunt hurry ice idea if impact imports improve improves in in-line
inch include including increase increased increases index industry inequality info information
infrastructure initial initiated insect instant interest into inventories inventory invest investing
iron is island isn issue issues it its jaguar job jobless jobs join joins joy jump jumped jumps just
keep key kill killed kind king kitchen knew know labor lady lake land language large largest last late
latest laugh launch launches law lawsuit lay lead leader leaders leads learn least leave leaves leaving
left leg legal lending less let letter level levels license life lift lifted lifts light like likely
limits line list listen listing little live loan loans local long longer look looking looks looms lose
losers loses losing loss losses lost lot loud love low lower lowers lowest lows luxury ma machine made
magnet main maintained major make maker makes making man manager many map margin mark market markets
masks mass massive master match matter may me mean measures meat meet meeting meets members mercury
merger metal method midday middle might mile military milk millennials million millions mind mine minute
minutes miss misses missing mixed mln model modern moment momentum money monitor monster month months
moon more morning most mother motion mount mountain mouth move movers moves moving much music must my
name names nation nations natural nature near nearly nears need needed needs negative neighbor network
neutral never new news next nice night nine no noise noon nor north nose not notable note notes nothing
notice now number numbers object observe ocean of off offer offering offers office official officials
often oil old on once one online only open opening opens operate operations opposite optimism optimistic
or oracle orange order orders organ other others our out outbreak outlook outperform output outside over
overhaul overnight overweight own owner pace pact page paid paint pair pandemic paper parent part
partner partnership parts party pass past path pay paying payments peace people per perhaps period
person personal pick picks pickup picture piece pioneer place plain plan plane plans plant platform play
please plunge plunges plural pm poem point points pole policy political politicians poor pop popular
port pose position positive possible post posts potential pound power practice pre pre-market
preliminary premarket prepare present presentation presidential press pressure pretty price prices
pricing prime print private probable probably probe problem problems process produce producer producers
product production profit profitability profits program programs progress promising proper property
proposal proposes protect protection protest protesters prove provide public pull pulls puma purchase
purchases push pushes put puts quart quarterly quest question quick quiet quite race radio rain raise
raised raises raising rallies rally ran range rapid rare rate rates rather rd re reach read reading
ready real reality really reason rebound receive recent recession record records recovery red region
rejects relief remain remains remember repeat reply repo report reported reportedly reports repurchase
request rest result results retail retailer retailers return reveals revenue reverse revised revs rich
ride right ring rise rises rising rival rivals river road rock role roll room root rope rose round row
rule rules run safe said sail sale sales salt same same-store sand sat save saw say saying says scale
scandal school science score sea search season seat second section sector see seed seeing seeks seem
seen sees select self sell sell-off selling selloff sells send sense sent serve service session set sets
setting settle settles seven several shale shall shape share shares sharp sharply she sheet shell shift
shine ship shoe shop shore short short-term shorts should shoulder shout show shows side sight sign
signal signs silent silver simple since sing single sinks sister sit six size skill skin sky sleep slide
slides slightly slip slips slow slowing slump small smell smile snow so soars soft soil solar sold
soldier solid solution solve some something son song soon sound source sources south space speak special
speed spell spend spending spoke spot spread spring sprint square squeeze staff stake stand star start
started starting starts startup state station stay stead steam steel step steps stick still stimulus
stockmarket stone stood stop store stores story straight strange stream streaming street strength stress
strike stripe strong struggling student students study subject substantial subway success such sudden
sues suffix sugar suggests suit summer summit sun supply support sure surface surge surges surprise
survey swim swing swings system table tail take taken takeover takes taking talk talks target targets
tariff tariffs tax taxes teach team teams teeth tell tells temperature ten term terms test th than thank
thanks that the theft their them then there there's these they thick thin thing things think third this
those though thought thousand three through throw tide tie time tiny tire to today today's together told
toll tomorrow tone too took tool top tops total touch tough toward town track trade trader trades
trading traffic train transaction travel treatment tree trend trial triangle trillion trip trouble truck
true trust try trying tube tumble turn turns twenty twice two type uncertainty under underweight
unemployment unit unity unprecedented until unveils up upbeat updates upgraded ups upside us use used
users using usual valley value valued vaping vehicles very via victory video view violence visa vision
visit voice volatility volume vote voters vs wage wait walk wall want wants war warm warming warning
warns was wash waste watch watching water wave way ways we weak weakness wear weather website week
week's weeks weigh weighs weight well went were west what what's wheel when where which while white who
whole why wide wife wild will willing win wind window wing winter wire wish with without woman women won
won't wonder wood word work workers working world world's worried worries worse would write wrong yard
year year-old years yellow yes yet yields you you're young your zero zone
"""

_FIRST_NAMES = """
aaron adam alan albert alex alexander alice amanda amy andrea andrew angela ann anna anne anthony arthur
ashley barbara ben benjamin betty beverly bill billy bob bobby bonnie brad brandon brenda brian bruce
carl carol caroline catherine charles charlie cheryl chris christian christina christine christopher
cindy claire colin craig daniel danielle david dean debbie deborah dell denise dennis diana diane donald
donna doris dorothy douglas dylan ed edward elizabeth ellen emily emma eric erin eugene evelyn frances
frank fred gary george gerald gloria grace greg gregory harold harry heather helen henry howard ian jack
jackie jacob james jane janet janice jason jean jeff jeffrey jennifer jeremy jerry jessica jim jimmy
joan joe john johnny jon jonathan jordan jose joseph joshua joyce juan judith judy julia julie justin
karen katherine kathleen kathy keith kelly ken kenneth kevin kim kimberly kyle larry laura lauren
lawrence linda lisa louis louise lucy margaret maria marie marilyn mark martha martin mary matt matthew
megan melissa michael michelle mike nancy nathan nicholas nicole noah norma oliver pamela patricia
patrick paul peter philip phillip rachel ralph randy raymond rebecca richard rick robert roger ronald
rose roy russell ruth ryan sam samuel sandra sara sarah scott sean sharon shirley sophia stephanie
stephen steve steven susan teresa terry thomas tim timothy tina todd tom tony tyler victoria vincent
virginia walter warren wayne william willie
"""

COMMON_WORDS = frozenset(_COMMON_WORDS.split())
FIRST_NAMES = frozenset(_FIRST_NAMES.split())
